"""Training jobs: POST/GET /api/training-jobs. The logic is in chalicelib/services/training.py."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from chalice import Blueprint
from msgspec import Meta

from chalicelib.api import responses
from chalicelib.api.routing import PageQuery, created, cursor_id, paginated, parse_id, route
from chalicelib.services import training as training_service
from chalicelib.services.identity import current_principal

if TYPE_CHECKING:
    from chalicelib.db.tables import MLModel, TrainingJob

training_api = Blueprint(__name__)

MODEL_NAME = r"^[a-z0-9][a-z0-9_.-]{0,99}$"


class CreateTrainingJob(msgspec.Struct, forbid_unknown_fields=True):
    dataset_id: Annotated[int, Meta(ge=1)]
    model_name: Annotated[str, Meta(pattern=MODEL_NAME)]
    algorithm: Annotated[str, Meta(max_length=50)]
    features: Annotated[str, Meta(max_length=50)]
    params: dict[str, Any] = {}
    feature_params: dict[str, Any] = {}
    test_size: Annotated[float, Meta(ge=0.05, le=0.5)] = 0.25
    seed: Annotated[int, Meta(ge=0, le=2**31 - 1)] = 0
    # {"method": "auto" | "incremental" | "sample", "sample_items": N}: how a large dataset is fitted
    fit: dict[str, Any] = {}


def duration_ms(started, finished) -> int | None:
    return int((finished - started).total_seconds() * 1000) if started and finished else None


def job_json(job: TrainingJob, model: MLModel | None) -> dict:
    return {
        "id": job.id,
        "dataset_id": job.dataset_id,
        "model_name": job.model_name,
        "algorithm": job.algorithm,
        "features": job.features,
        "params": job.params.get("algorithm_params", {}),
        "feature_params": job.params.get("feature_params", {}),
        "fit": job.params.get("fit", {}),
        "test_size": job.test_size,
        "seed": job.seed,
        "status": job.status,
        "progress": {"percent": job.progress, "stage": job.stage},
        "metrics": job.metrics,
        "model": {"id": model.id, "name": model.name, "version": model.version} if model else None,
        "error": job.error,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "duration_ms": duration_ms(job.started_at, job.finished_at),
    }


@route(
    training_api,
    "/api/training-jobs",
    methods=["POST"],
    body=CreateTrainingJob,
    tag="training",
    summary="Train a scikit-learn classifier on a dataset (runs on Dask); 202 with the job",
    responses={202: "job queued", 400: "bad algorithm, features or parameters", 404: "no such dataset"},
    response={202: responses.TrainingJob},
)
def create_training_job(body: CreateTrainingJob):
    principal = current_principal(training_api.current_request)
    job, model = training_service.create(
        principal,
        dataset_id=body.dataset_id,
        model_name=body.model_name,
        algorithm=body.algorithm,
        features=body.features,
        params=body.params,
        feature_params=body.feature_params,
        test_size=body.test_size,
        seed=body.seed,
        fit=body.fit,
    )
    return created(job_json(job, model), f"/api/training-jobs/{job.id}", status=202)


@route(
    training_api,
    "/api/training-jobs",
    methods=["GET"],
    query=PageQuery,
    tag="training",
    summary="Your training jobs",
    response=responses.TrainingJobPage,
)
def list_training_jobs(query: PageQuery):
    rows = training_service.page(
        current_principal(training_api.current_request), limit=query.limit + 1, before_id=cursor_id(query.cursor)
    )
    return paginated(rows, query.limit, lambda state: job_json(*state))


@route(
    training_api,
    "/api/training-jobs/{job_id}",
    methods=["GET"],
    tag="training",
    summary="A training job: status, progress, metrics, the model it registered",
    responses={404: "no such job"},
    response=responses.TrainingJob,
)
def get_training_job(job_id: str):
    number = parse_id(job_id, "training job")
    return job_json(*training_service.get(current_principal(training_api.current_request), number))


@route(
    training_api,
    "/api/training-jobs/{job_id}/cancel",
    methods=["POST"],
    tag="training",
    summary="Cancel a pending or running job (it stops at its next progress step)",
    responses={404: "no such job", 409: "already finished"},
    response=responses.TrainingJob,
)
def cancel_training_job(job_id: str):
    number = parse_id(job_id, "training job")
    return job_json(*training_service.cancel(current_principal(training_api.current_request), number))
