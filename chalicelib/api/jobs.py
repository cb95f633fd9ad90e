"""Training jobs and batches: validated here, run on the Dask cluster (chalicelib/services/dask_jobs.py)."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from chalice import Blueprint, Response
from msgspec import Meta

from chalicelib import compute, storage
from chalicelib.api.routing import PageQuery, created, cursor_id, paginated, parse_id, route, to_json
from chalicelib.api.tasks import ANALYZERS, choose_model, resolve_operation
from chalicelib.config import get_settings
from chalicelib.db.session import session_scope
from chalicelib.db.vocabulary import JOB_FINISHED
from chalicelib.errors import ApiError, found
from chalicelib.services.identity import current_principal

if TYPE_CHECKING:
    from chalicelib.db.tables import Batch, MLModel, TrainingJob

jobs_api = Blueprint(__name__)

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


class CreateBatch(msgspec.Struct, forbid_unknown_fields=True):
    image_ids: Annotated[list[Annotated[int, Meta(ge=1)]], Meta(min_length=1, max_length=100_000)] | None = None
    prefix: Annotated[str, Meta(min_length=1, max_length=1000)] | None = None
    dataset_id: Annotated[int, Meta(ge=1)] | None = None
    operation: Annotated[str, Meta(max_length=100)] | None = None
    model: Annotated[str, Meta(max_length=100)] | None = None
    params: dict[str, Any] = {}


def _duration_ms(started, finished) -> int | None:
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
        "duration_ms": _duration_ms(job.started_at, job.finished_at),
    }


def _job_body(session, job: TrainingJob) -> dict:
    from chalicelib.db.tables import MLModel

    return job_json(job, session.get(MLModel, job.model_id) if job.model_id else None)


@route(
    jobs_api,
    "/api/training-jobs",
    methods=["POST"],
    body=CreateTrainingJob,
    tag="training",
    summary="Train a scikit-learn classifier on a dataset (runs on Dask); 202 with the job",
    responses={202: "job queued", 400: "bad algorithm, features or parameters", 404: "no such dataset"},
)
def create_training_job(body: CreateTrainingJob):
    from chalicelib.db import datasets as dataset_rows
    from chalicelib.db.tables import TrainingJob
    from chalicelib.ml.features import clean_feature_params
    from chalicelib.ml.training import check_split, clean_algorithm_params

    algorithm_params = clean_algorithm_params(body.algorithm, body.params)
    feature_params = clean_feature_params(body.features, body.feature_params)
    principal = current_principal(jobs_api.current_request)
    with session_scope() as session:
        found(dataset_rows.get_for_owner(session, body.dataset_id, principal.owner_filter), "dataset", body.dataset_id)
        counts = dataset_rows.label_counts(session, body.dataset_id)
        check_split([label for label, n in counts.items() for _ in range(n)], body.test_size)
        job = TrainingJob(
            owner_id=principal.user_id,
            dataset_id=body.dataset_id,
            model_name=body.model_name,
            algorithm=body.algorithm,
            features=body.features,
            test_size=body.test_size,
            seed=body.seed,
            params={"algorithm_params": algorithm_params, "feature_params": feature_params},
            status="pending",
            stage="queued",
        )
        session.add(job)
        session.flush()
        job_body = _job_body(session, job)
    from chalicelib.services import dask_submit

    if dask_submit.submit_training_job(job_body["id"]):  # the cluster could not take it: the row says why
        with session_scope() as session:
            job_body = _job_body(session, session.get(TrainingJob, job_body["id"]))
    return created(job_body, f"/api/training-jobs/{job_body['id']}", status=202)


@route(jobs_api, "/api/training-jobs", methods=["GET"], query=PageQuery, tag="training", summary="Your training jobs")
def list_training_jobs(query: PageQuery):
    from chalicelib.db import jobs as job_rows

    principal = current_principal(jobs_api.current_request)
    with session_scope() as session:
        rows = job_rows.list_jobs(
            session, principal.owner_filter, limit=query.limit + 1, before_id=cursor_id(query.cursor)
        )
        return paginated(rows, query.limit, lambda job: _job_body(session, job))


@route(
    jobs_api,
    "/api/training-jobs/{job_id}",
    methods=["GET"],
    tag="training",
    summary="A training job: status, progress, metrics, the model it registered",
    responses={404: "no such job"},
)
def get_training_job(job_id: str):
    from chalicelib.db import jobs as job_rows

    job_id = parse_id(job_id, "training job")
    principal = current_principal(jobs_api.current_request)
    with session_scope() as session:
        job = found(job_rows.get_job(session, job_id, principal.owner_filter), "training job", job_id)
        body = _job_body(session, job)
    from chalicelib.services import dask_submit

    dask_submit.recheck_training_job(job_id, status=job.status, created_at=job.created_at)
    return body


@route(
    jobs_api,
    "/api/training-jobs/{job_id}/cancel",
    methods=["POST"],
    tag="training",
    summary="Cancel a pending or running job (it stops at its next progress step)",
    responses={404: "no such job", 409: "already finished"},
)
def cancel_training_job(job_id: str):
    from chalicelib.db import jobs as job_rows

    job_id = parse_id(job_id, "training job")
    principal = current_principal(jobs_api.current_request)
    with session_scope() as session:
        job = found(job_rows.get_job(session, job_id, principal.owner_filter), "training job", job_id)
        if job.status in JOB_FINISHED:
            raise ApiError(409, "job_finished", f"training job {job_id} is already {job.status}")
        job_rows.finish_job(session, job_id, "cancelled")
        session.refresh(job)
        return _job_body(session, job)


def batch_json(batch: Batch, counts: dict[str, int]) -> dict:
    total = sum(counts.values())
    finished = counts["succeeded"] + counts["failed"]
    return {
        "id": batch.id,
        "operation": batch.operation,
        "params": batch.params,
        "source": batch.source,
        "status": batch.status,
        "total": total,
        **counts,
        "progress": {"percent": round(100 * finished / total) if total else 100, "finished": finished},
        "export_key": batch.export_key,
        "error": batch.error,
        "created_at": batch.created_at,
        "started_at": batch.started_at,
        "finished_at": batch.finished_at,
        "duration_ms": _duration_ms(batch.started_at, batch.finished_at),
    }


def _batch_images(session, body: CreateBatch, principal) -> tuple[dict, list[int]]:
    from sqlalchemy import select

    from chalicelib.api.datasets import check_readable
    from chalicelib.db import datasets as dataset_rows
    from chalicelib.db.tables import Image

    sources = [s for s in ("image_ids", "prefix", "dataset_id") if getattr(body, s) is not None]
    if len(sources) != 1:
        raise ApiError(400, "invalid_request", "give exactly one of 'image_ids', 'prefix' or 'dataset_id'")
    query = select(Image.id).order_by(Image.id)
    if principal.owner_filter is not None:
        query = query.where(Image.owner_id == principal.owner_filter)
    if body.image_ids is not None:
        wanted = sorted(set(body.image_ids))
        found = list(session.scalars(query.where(Image.id.in_(wanted))))
        missing = sorted(set(wanted) - set(found))
        if missing:
            raise ApiError(404, "not_found", f"images {missing[:20]} do not exist")
        return {"image_ids": len(found)}, found
    if body.prefix is not None:
        check_readable(principal, body.prefix)
        escaped = body.prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return {"prefix": body.prefix}, list(session.scalars(query.where(Image.key.like(escaped + "%", escape="\\"))))
    found(dataset_rows.get_for_owner(session, body.dataset_id, principal.owner_filter), "dataset", body.dataset_id)
    ids = sorted({image_id for _, _, image_id in dataset_rows.items(session, body.dataset_id) if image_id})
    return {"dataset_id": body.dataset_id}, ids


def request_hash(owner_id: int, body: CreateBatch) -> str:
    canonical = json.dumps({"owner": owner_id, **msgspec.to_builtins(body)}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@route(
    jobs_api,
    "/api/batches",
    methods=["POST"],
    body=CreateBatch,
    tag="batches",
    summary="Run one operation or analyzer over many images on Dask; resubmitting the same request "
    "returns the same batch",
    responses={202: "batch queued", 200: "the same request was submitted before", 404: "no such images"},
)
def create_batch(body: CreateBatch):
    from chalicelib.db import jobs as job_rows
    from chalicelib.db.tables import Batch

    if (body.operation is None) == (body.model is None):
        raise ApiError(400, "invalid_request", "give exactly one of 'operation' or 'model'")
    from chalicelib.ml.runtimes import model_task

    request = jobs_api.current_request
    model_id, operation = None, body.operation
    if body.model in ANALYZERS:
        kind, entry, operation = "analysis", ANALYZERS.get(body.model), body.model
    elif body.model is not None:  # a registered model: its active version, pinned for the whole batch
        chosen = choose_model(request, body.model)
        kind, entry, model_id, operation = "model", model_task(chosen.task), chosen.id, chosen.name
    else:
        kind, entry = resolve_operation(body.operation)
    params = entry.clean_params(body.params)
    principal = current_principal(request)
    digest = request_hash(principal.user_id, body)
    with session_scope() as session:
        existing = job_rows.find_batch(session, principal.user_id, digest)
        if existing is not None:
            return Response(
                body=to_json(batch_json(existing, job_rows.batch_counts(session, existing.id))),
                status_code=200,
                headers={"Content-Type": "application/json", "Location": f"/api/batches/{existing.id}"},
            )
        source, image_ids = _batch_images(session, body, principal)
        if not image_ids:
            raise ApiError(400, "empty_batch", "the source names no images")
        if len(image_ids) > get_settings().max_batch_images:
            raise ApiError(
                400, "batch_too_large", f"{len(image_ids):,} images; the limit is {get_settings().max_batch_images:,}"
            )
        batch = Batch(
            owner_id=principal.user_id,
            request_hash=digest,
            operation=operation,
            params=params,
            source=source,
            status="pending",
            total=len(image_ids),
        )
        session.add(batch)
        session.flush()
        job_rows.add_batch_tasks(session, batch, kind=kind, image_ids=image_ids, params=params, model_id=model_id)
        batch_body = batch_json(batch, job_rows.batch_counts(session, batch.id))
    from chalicelib.services import dask_submit

    if dask_submit.submit_batch(batch_body["id"]):  # the cluster could not take it: the row says why
        with session_scope() as session:
            batch_body = batch_json(
                session.get(Batch, batch_body["id"]), job_rows.batch_counts(session, batch_body["id"])
            )
    return created(batch_body, f"/api/batches/{batch_body['id']}", status=202)


@route(jobs_api, "/api/batches", methods=["GET"], query=PageQuery, tag="batches", summary="Your batches")
def list_batches(query: PageQuery):
    from chalicelib.db import jobs as job_rows

    principal = current_principal(jobs_api.current_request)
    with session_scope() as session:
        rows = job_rows.list_batches(
            session, principal.owner_filter, limit=query.limit + 1, before_id=cursor_id(query.cursor)
        )
        return paginated(rows, query.limit, lambda b: batch_json(b, job_rows.batch_counts(session, b.id)))


@route(
    jobs_api,
    "/api/batches/{batch_id}",
    methods=["GET"],
    tag="batches",
    summary="A batch: total, succeeded, failed, progress",
    responses={404: "no such batch"},
)
def get_batch(batch_id: str):
    from chalicelib.db import jobs as job_rows

    batch_id = parse_id(batch_id, "batch")
    principal = current_principal(jobs_api.current_request)
    with session_scope() as session:
        batch = found(job_rows.get_batch(session, batch_id, principal.owner_filter), "batch", batch_id)
        body = batch_json(batch, job_rows.batch_counts(session, batch_id))
    from chalicelib.services import dask_submit

    dask_submit.recheck_batch(batch_id, status=batch.status, created_at=batch.created_at)
    return body


@route(
    jobs_api,
    "/api/batches/{batch_id}/export",
    methods=["GET"],
    tag="batches",
    summary="Write the batch's results as Parquet under exports/ and return a download URL",
    responses={404: "no such batch", 409: "batch not finished", 202: "export still being written"},
)
def export_batch(batch_id: str):
    from chalicelib.db import jobs as job_rows

    batch_id = parse_id(batch_id, "batch")
    principal = current_principal(jobs_api.current_request)
    with session_scope() as session:
        found(job_rows.get_batch(session, batch_id, principal.owner_filter), "batch", batch_id)
        counts = job_rows.batch_counts(session, batch_id)
    if counts["pending"] or counts["running"]:
        raise ApiError(
            409,
            "batch_running",
            f"batch {batch_id} still has {counts['pending'] + counts['running']} "
            "unfinished tasks; export when it is done",
        )
    from chalicelib.errors import ComputeUnavailable
    from chalicelib.services.dask_jobs import export_batch as write_export

    # pyarrow lives on the Dask workers, not in the api function: the export runs there.
    try:
        future = compute.ready_client().submit(write_export, batch_id, pure=False)
    except ComputeUnavailable as exc:
        raise ApiError(503, "compute_unavailable", str(exc)) from exc
    try:
        key = future.result(timeout=get_settings().max_wait_s)
    except TimeoutError:
        return Response(
            body={"status": "writing"},
            status_code=202,
            headers={"Content-Type": "application/json", "Location": f"/api/batches/{batch_id}/export"},
        )
    return {"key": key, "url": storage.presign_get(key), "format": "parquet", "rows": sum(counts.values())}
