"""Training jobs: validated here, run on the Dask cluster (chalicelib/services/dask_jobs.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalicelib.db import transitions
from chalicelib.db.session import session_scope
from chalicelib.db.vocabulary import JOB_FINISHED
from chalicelib.errors import ApiError, found

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from chalicelib.db.tables import MLModel, TrainingJob
    from chalicelib.services.identity import Principal

# A job with the model it registered (None until it succeeds).
JobState = tuple["TrainingJob", "MLModel | None"]


def _state(session: Session, job: TrainingJob) -> JobState:
    from chalicelib.db.tables import MLModel

    return job, session.get(MLModel, job.model_id) if job.model_id else None


def create(
    principal: Principal,
    *,
    dataset_id: int,
    model_name: str,
    algorithm: str,
    features: str,
    params: dict[str, Any],
    feature_params: dict[str, Any],
    test_size: float,
    seed: int,
    fit: dict[str, Any] | None = None,
) -> JobState:
    """A pending job on one of the caller's datasets, submitted to the cluster; 400 for a bad
    algorithm, features, parameters or fit options, a backbone that is not one of the caller's
    embed models, or a dataset that cannot be split; 404 for no such dataset."""
    from chalicelib.config import get_settings
    from chalicelib.db import datasets as dataset_rows
    from chalicelib.db.tables import TrainingJob
    from chalicelib.ml.features import clean_feature_params
    from chalicelib.ml.training import check_split, clean_algorithm_params, clean_fit_options

    algorithm_params = clean_algorithm_params(algorithm, params)
    fit_options = clean_fit_options(algorithm, {"sample_items": get_settings().training_sample_items, **(fit or {})})
    with session_scope() as session:
        if features == "embedding":
            feature_params = _with_backbone(session, principal, algorithm, algorithm_params, feature_params)
        clean_features = clean_feature_params(features, feature_params)
        found(dataset_rows.get_for_owner(session, dataset_id, principal.owner_filter), "dataset", dataset_id)
        counts = dataset_rows.label_counts(session, dataset_id)
        check_split([label for label, n in counts.items() for _ in range(n)], test_size)
        job = TrainingJob(
            owner_id=principal.user_id,
            dataset_id=dataset_id,
            model_name=model_name,
            algorithm=algorithm,
            features=features,
            test_size=test_size,
            seed=seed,
            params={"algorithm_params": algorithm_params, "feature_params": clean_features, "fit": fit_options},
            status="pending",
            stage="queued",
        )
        session.add(job)
        session.flush()
        state = _state(session, job)
    from chalicelib.services import dask_submit

    if dask_submit.submit_training_job(job.id):  # the cluster could not take it: the row says why
        with session_scope() as session:
            state = _state(session, session.get_one(TrainingJob, job.id))
    return state


# Heads that skl2onnx cannot join behind a backbone: no probabilities to export.
NOT_EXPORTABLE: dict[tuple[str, str | None], str] = {
    ("linear_svm", None): "a linear SVM",
    ("sgd", "hinge"): "sgd with the hinge loss",
}


def _with_backbone(
    session: Session, principal: Principal, algorithm: str, algorithm_params: dict, feature_params: dict
) -> dict:
    """The `embedding` feature's parameters with the backbone's active version filled in (the job
    trains on that version); 400 unless `model` names one of the caller's ONNX embed models, or
    for a head that cannot run behind it as one ONNX model."""
    from chalicelib.db import ml_models
    from chalicelib.errors import InvalidRequest

    filled = sorted({"sha256", "input_spec", "dimensions"} & set(feature_params))
    if filled:
        raise InvalidRequest(
            f"the embedding feature fills in {filled} from the backbone; give only 'model' and 'normalize'"
        )
    head = NOT_EXPORTABLE.get((algorithm, None)) or NOT_EXPORTABLE.get((algorithm, algorithm_params.get("loss")))
    if head:
        raise InvalidRequest(
            f"{head} gives no probabilities, so it cannot run behind a backbone as one ONNX model; "
            "choose logistic_regression, sgd (log_loss), mlp, knn, random_forest or naive_bayes",
            code="export_unsupported",
        )
    name = feature_params.get("model")
    backbone = ml_models.resolve(session, principal.user_id, name) if isinstance(name, str) else None
    if backbone is None or backbone.task != "embed" or backbone.framework != "onnx":
        raise InvalidRequest(
            f"'model' must name one of your registered ONNX embed models (an active version), got {name!r}",
            code="invalid_backbone",
        )
    return {**feature_params, "sha256": backbone.sha256, "input_spec": backbone.input_spec}


def page(principal: Principal, *, limit: int, before_id: int | None) -> list[JobState]:
    from chalicelib.db import jobs as job_rows

    with session_scope() as session:
        rows = job_rows.list_jobs(session, principal.owner_filter, limit=limit, before_id=before_id)
        return [_state(session, job) for job in rows]


def get(principal: Principal, job_id: int) -> JobState:
    """One of the caller's jobs (404 otherwise); submitted again if its submission was lost."""
    from chalicelib.db import jobs as job_rows
    from chalicelib.services import dask_submit

    with session_scope() as session:
        job = found(job_rows.get_job(session, job_id, principal.owner_filter), "training job", job_id)
        state = _state(session, job)
    dask_submit.recheck_training_job(job_id, status=job.status, created_at=job.created_at)
    return state


def cancel(principal: Principal, job_id: int) -> JobState:
    """Cancel a pending or running job (it stops at its next progress step); 409 once finished."""
    from chalicelib.db import jobs as job_rows

    with session_scope() as session:
        job = found(job_rows.get_job(session, job_id, principal.owner_filter), "training job", job_id)
        if job.status in JOB_FINISHED:
            raise ApiError(409, "job_finished", f"training job {job_id} is already {job.status}")
        transitions.job_finished(transitions.on_session(session), job_id, "cancelled")
        session.refresh(job)
        return _state(session, job)
