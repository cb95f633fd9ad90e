"""Jobs that run on the Dask cluster: training, batches, imports, exports.

Each is submitted by the API fire-and-forget and does its own bookkeeping: it reads its row,
fans out over partitions from inside the worker (`worker_client`, so the driver does not
hold a worker thread while its partitions run), and writes progress, results and failures
to PostgreSQL and S3. Workers import this same chalicelib code.
"""

from __future__ import annotations

import functools
import hashlib
import logging

from chalicelib import storage
from chalicelib.config import get_settings
from chalicelib.db import datasets as dataset_rows
from chalicelib.db import jobs as job_rows
from chalicelib.db import transitions
from chalicelib.db.session import session_scope
from chalicelib.logs import log_context
from chalicelib.metrics import job_progress

log = logging.getLogger("pixelake.jobs")

FEATURES_SHARE = 75  # percent of a training job's progress bar spent extracting features


class JobCancelled(Exception):
    pass


def _with_log_context(id_name: str):
    """Every log line of the job carries its id (job_id or batch_id), as a request's carry theirs.
    functools.wraps keeps the name, so Dask still pickles the job by reference."""

    def decorate(job):
        @functools.wraps(job)
        def run(ident: int) -> str:
            with log_context(**{id_name: ident}):
                return job(ident)

        return run

    return decorate


def read_object(bucket: str, key: str) -> bytes:
    """Module-level (picklable with functools.partial) reader for Dask workers."""
    return storage.get(key, bucket=bucket)


def _progress(job_id: int, percent: int, stage: str) -> None:
    job_progress("training", percent, job_id=job_id)
    with session_scope() as session:
        if (
            transitions.job_progress(transitions.on_session(session), job_id, progress=percent, stage=stage)
            == "cancelled"
        ):
            raise JobCancelled()


@_with_log_context("job_id")
def run_training_job(job_id: int) -> str:
    """Extract features in parallel, fit, evaluate on held-out items, save with skops, register."""
    from distributed import worker_client

    from chalicelib.errors import InvalidRequest
    from chalicelib.ml.distributed import default_partitions, describe_failure, extract_features_parallel

    with session_scope() as session:
        spec = transitions.job_running(transitions.on_session(session), job_id)
        if spec is None:
            return "skipped"
        items = [(key, label) for key, label, _ in dataset_rows.items(session, spec["dataset_id"])]
    try:
        feature_params = spec["params"].get("feature_params") or {}
        algorithm_params = spec["params"].get("algorithm_params") or {}

        def on_progress(done: int, total: int) -> None:
            _progress(job_id, round(FEATURES_SHARE * done / max(total, 1)), "features")

        with worker_client() as client:
            X, y, failed = extract_features_parallel(
                client,
                items,
                functools.partial(read_object, get_settings().bucket),
                spec["features"],
                feature_params,
                default_partitions(client, len(items)),
                on_progress,
            )
        _progress(job_id, FEATURES_SHARE + 5, "training")
        from chalicelib.ml.training import save_model, train_and_evaluate

        outcome = train_and_evaluate(
            X, y, algorithm=spec["algorithm"], params=algorithm_params, test_size=spec["test_size"], seed=spec["seed"]
        )
        _progress(job_id, 95, "saving")
        metrics = {
            **outcome.metrics,
            "items": len(items),
            "failed_items": len(failed),
            "failed_examples": [{"key": k, "reason": r} for k, r in failed[:20]],
            "warnings": list(outcome.warnings),
        }
        model_id = register_trained_model(
            spec, job_id, save_model(outcome.model), outcome.labels, metrics, feature_params
        )
        with session_scope() as session:
            transitions.job_finished(
                transitions.on_session(session), job_id, "succeeded", metrics=metrics, model_id=model_id
            )
        return "succeeded"
    except JobCancelled:
        return "cancelled"
    except InvalidRequest as exc:
        reason = str(exc)
    except Exception as exc:  # the job records why it failed; nothing is left running
        log.exception("training job %s failed", job_id)
        reason = describe_failure(exc)
    with session_scope() as session:
        transitions.job_finished(transitions.on_session(session), job_id, "failed", error=reason)
    return "failed"


def register_trained_model(
    spec: dict, job_id: int, artifact: bytes, labels: list[str], metrics: dict, feature_params: dict
) -> int:
    from chalicelib.db import ml_models

    sha256 = hashlib.sha256(artifact).hexdigest()
    owner, name = spec["owner_id"], spec["model_name"]
    with session_scope() as session:
        version = ml_models.allocate_version(session, owner, name)
        model = ml_models.create(
            session,
            owner_id=owner,
            name=name,
            version=version,
            framework="sklearn",
            task="classify",
            artifact_key=storage.model_key(owner, name, version, "skops"),
            sha256=sha256,
            size_bytes=len(artifact),
            input_spec={"feature": spec["features"], "feature_params": feature_params},
            labels=labels,
            metrics=metrics,
            description=f"trained by training job {job_id}",
            training_job_id=job_id,
        )
        storage.put(model.artifact_key, artifact, "application/octet-stream")
        return model.id


def run_batch_item(task_id: int) -> str:
    from chalicelib.services.task_runs import execute

    return execute(task_id)


@_with_log_context("batch_id")
def run_batch_job(batch_id: int) -> str:
    """Run the batch's unfinished tasks in partitions; each task records its own outcome."""
    from distributed import worker_client

    from chalicelib.ml.distributed import default_partitions, run_batch

    with session_scope() as session:
        if not transitions.batch_running(transitions.on_session(session), batch_id):
            return "skipped"
        task_ids = job_rows.pending_batch_tasks(session, batch_id)
    with worker_client() as client:
        for done, outcome in enumerate(
            run_batch(client, task_ids, run_batch_item, default_partitions(client, len(task_ids))), 1
        ):
            if done % max(1, len(task_ids) // 20) == 0:  # about twenty points per batch
                job_progress("batch", round(100 * done / len(task_ids)), batch_id=batch_id)
            if not outcome.ok:  # a transient fault the task could not record itself
                with session_scope() as session:
                    transitions.task_failed(
                        transitions.on_session(session), outcome.item, outcome.error or "the task could not run"
                    )
    with session_scope() as session:
        return transitions.batch_finished(transitions.on_session(session), batch_id)


@_with_log_context("import_id")
def run_import_job(import_id: int) -> str:
    """List the import's objects and ingest them in partitions (chalicelib/services/import_runs.py)."""
    from chalicelib.services.import_runs import run_import

    return run_import(import_id)


def export_batch(batch_id: int) -> str:
    """Write the batch's results as Hive-partitioned Parquet under exports/ (chalicelib/services/exports.py)."""
    from chalicelib.services.exports import export_batch as write_batch_export

    return write_batch_export(batch_id)
