"""Batches: one operation, analyzer or model over many images, run on the Dask cluster.

The request is resolved like a single task (chalicelib/services/resolver.py); each image gets a
task of the batch, and chalicelib/services/dask_jobs.py `run_batch_job` runs them all through
the queue workers' `execute`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib import compute, storage
from chalicelib.config import get_settings
from chalicelib.db.session import session_scope
from chalicelib.errors import ApiError, ComputeUnavailable, found
from chalicelib.services import resolver

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from chalicelib.db.tables import Batch
    from chalicelib.services.identity import Principal

SOURCES = ("image_ids", "prefix", "dataset_id")


@dataclass(frozen=True)
class BatchState:
    batch: Batch
    counts: dict[str, int]  # tasks by status: pending, running, succeeded, failed, cancelled


IMAGE_IDS_CHUNK = 5_000  # a request's list of image ids, inserted by the api in chunks of this many


def _state(batch: Batch) -> BatchState:
    """The batch and its counts; while its driver is still making the tasks of an unfinished
    batch, the ones not yet made count as pending (the total was counted at creation)."""
    from chalicelib.db import jobs as job_rows
    from chalicelib.db.vocabulary import JOB_FINISHED

    counts = job_rows.batch_counts(batch)
    if batch.tasks_made_at is None and batch.status not in JOB_FINISHED:
        counts["pending"] += max(0, batch.total - sum(counts.values()))
    return BatchState(batch, counts)


def request_hash(owner_id: int, request: dict[str, Any]) -> str:
    canonical = json.dumps({"owner": owner_id, **request}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _checked_source(session: Session, principal: Principal, request: dict[str, Any]) -> tuple[dict, list[int] | None]:
    """The batch's `source` ({"image_ids": n} | {"prefix": …} | {"dataset_id": …}) once the caller
    may use it, and the image ids of a list (all of which exist and are the caller's), else None."""
    from sqlalchemy import select

    from chalicelib.db import datasets as dataset_rows
    from chalicelib.db import jobs as job_rows
    from chalicelib.db.tables import Image
    from chalicelib.services.access import check_readable

    given = [s for s in SOURCES if request.get(s) is not None]
    if len(given) != 1:
        raise ApiError(400, "invalid_request", "give exactly one of 'image_ids', 'prefix' or 'dataset_id'")
    if request.get("image_ids") is not None:
        wanted = sorted(set(request["image_ids"]))  # bounded by the request's size
        query = select(Image.id).where(Image.id.in_(job_rows.image_ids_in(wanted)))
        if principal.owner_filter is not None:
            query = query.where(Image.owner_id == principal.owner_filter)
        existing = set(session.scalars(query))
        missing = [image_id for image_id in wanted if image_id not in existing]
        if missing:
            raise ApiError(404, "not_found", f"images {missing[:20]} do not exist")
        return {"image_ids": len(wanted)}, wanted
    if request.get("prefix") is not None:
        check_readable(principal, request["prefix"])
        return {"prefix": request["prefix"]}, None
    dataset_id = request["dataset_id"]
    found(dataset_rows.get_for_owner(session, dataset_id, principal.owner_filter), "dataset", dataset_id)
    return {"dataset_id": dataset_id}, None


def _too_large(limit: int, queued: int) -> ApiError:
    if queued:
        return ApiError(
            400,
            "batch_too_large",
            f"your unfinished batches hold {queued:,} tasks and this batch would take them past the limit "
            f"of {limit:,} per user (PIXELAKE_MAX_BATCH_IMAGES); wait for them, cancel one, or make it smaller",
        )
    return ApiError(
        400,
        "batch_too_large",
        f"more than {limit:,} images; the limit is {limit:,} per user (PIXELAKE_MAX_BATCH_IMAGES)",
    )


def create(principal: Principal, request: dict[str, Any]) -> tuple[BatchState, bool]:
    """The batch of this request and whether it is new: the same request from the same user
    returns the batch it made before. `request` is the POST /api/batches body, every field present.
    A new batch is submitted to the cluster."""
    state, new = create_rows(principal, request)
    if not new:
        return state, False
    from chalicelib.db.tables import Batch
    from chalicelib.services import dask_submit

    if dask_submit.submit_batch(state.batch.id):  # the cluster could not take it: the row says why
        with session_scope() as session:
            state = _state(session.get_one(Batch, state.batch.id))
    return state, True


def create_rows(principal: Principal, request: dict[str, Any]) -> tuple[BatchState, bool]:
    """The batch row (create without the submission), in one transaction, with its `total`
    counted in the database; the tasks of a list of image ids are made here, those of a prefix
    or a dataset by the driver (services.dask_jobs.make_tasks). The user's unfinished tasks, in every batch, stay
    within PIXELAKE_MAX_BATCH_IMAGES: the count stops one past what is left, so it is bounded too.
    """
    from datetime import UTC, datetime

    from chalicelib.db import jobs as job_rows
    from chalicelib.db.tables import Batch

    plan = resolver.resolve(
        principal.user_id, operation=request.get("operation"), model=request.get("model"), params=request.get("params")
    )
    digest = request_hash(principal.user_id, request)
    with session_scope() as session:
        job_rows.lock_owner_batches(session, principal.user_id)
        existing = job_rows.find_batch(session, principal.user_id, digest)
        if existing is not None:
            return _state(existing), False
        source, image_ids = _checked_source(session, principal, request)
        limit = get_settings().max_batch_images
        queued = job_rows.queued_tasks(session, principal.user_id)
        allowed = max(0, limit - queued)
        if image_ids is None:
            total = job_rows.count_at_most(
                session, job_rows.source_images(source, principal.owner_filter)[0], allowed + 1
            )
        else:
            total = len(image_ids)
        if total > allowed:
            raise _too_large(limit, queued)
        if not total:
            raise ApiError(400, "empty_batch", "the source names no images")
        batch = Batch(
            owner_id=principal.user_id,
            request_hash=digest,
            operation=plan.operation,
            params=plan.params,
            source=source,
            status="pending",
            total=total,
            tasks_made_at=None if image_ids is None else datetime.now(UTC),
            task_kind=plan.kind,
            model_id=plan.model_id,
        )
        session.add(batch)
        session.flush()
        for start in range(0, len(image_ids or ()), IMAGE_IDS_CHUNK):
            chunk = job_rows.image_ids_in((image_ids or [])[start : start + IMAGE_IDS_CHUNK])
            job_rows.add_batch_tasks(session, batch, chunk, kind=plan.kind, params=plan.params, model_id=plan.model_id)
        session.refresh(batch)
        return _state(batch), True


def page(principal: Principal, *, limit: int, before_id: int | None) -> list[BatchState]:
    from chalicelib.db import jobs as job_rows

    with session_scope() as session:
        rows = job_rows.list_batches(session, principal.owner_filter, limit=limit, before_id=before_id)
        return [_state(batch) for batch in rows]


def get(principal: Principal, batch_id: int) -> BatchState:
    """One of the caller's batches (404 otherwise), its counts read from the batch row; submitted
    again if its submission was lost."""
    from chalicelib.db import jobs as job_rows
    from chalicelib.services import dask_submit

    with session_scope() as session:
        batch = found(job_rows.get_batch(session, batch_id, principal.owner_filter), "batch", batch_id)
        state = _state(batch)
    dask_submit.recheck_batch(batch_id, status=batch.status, created_at=batch.created_at)
    return state


def cancel(principal: Principal, batch_id: int) -> BatchState:
    """Cancel an unfinished batch: dispatch stops, its tasks not yet started end `cancelled`
    (those running finish); 409 once the batch is finished."""
    from chalicelib.db import jobs as job_rows
    from chalicelib.db import transitions

    with session_scope() as session:
        batch = found(job_rows.get_batch(session, batch_id, principal.owner_filter), "batch", batch_id)
        if not transitions.batch_cancelled(transitions.on_session(session), batch_id):
            raise ApiError(409, "batch_finished", f"batch {batch_id} is already {batch.status}")
        session.refresh(batch)
        return _state(batch)


def resume(principal: Principal, batch_id: int) -> BatchState:
    """Submit an unfinished batch again (after a scheduler restart, say): the new dispatcher runs
    only the tasks not yet finished; Dask's key keeps a dispatcher still running from being doubled.
    409 once the batch is finished."""
    from chalicelib.db import jobs as job_rows
    from chalicelib.db.tables import Batch
    from chalicelib.db.vocabulary import JOB_FINISHED
    from chalicelib.services import dask_submit

    with session_scope() as session:
        batch = found(job_rows.get_batch(session, batch_id, principal.owner_filter), "batch", batch_id)
        if batch.status in JOB_FINISHED:
            raise ApiError(409, "batch_finished", f"batch {batch_id} is already {batch.status}")
    dask_submit.submit_batch(batch_id)
    with session_scope() as session:
        return _state(session.get_one(Batch, batch_id))


def export(principal: Principal, batch_id: int) -> dict | None:
    """The batch's results as Parquet under exports/: key, url, format, rows; None while it is
    still being written (after the api's longest wait). 409 while tasks are unfinished."""
    from chalicelib.db import jobs as job_rows
    from chalicelib.services.dask_jobs import export_batch as write_export

    with session_scope() as session:
        counts = _state(found(job_rows.get_batch(session, batch_id, principal.owner_filter), "batch", batch_id)).counts
    if counts["pending"] or counts["running"]:
        raise ApiError(
            409,
            "batch_running",
            f"batch {batch_id} still has {counts['pending'] + counts['running']} "
            "unfinished tasks; export when it is done",
        )
    # pyarrow lives on the Dask workers, not in the api function: the export runs there.
    try:
        future = compute.ready_client().submit(write_export, batch_id, pure=False)
    except ComputeUnavailable as exc:
        raise ApiError(503, "compute_unavailable", str(exc)) from exc
    try:
        key = future.result(timeout=get_settings().max_wait_s)
    except TimeoutError:
        return None
    return {"key": key, "url": storage.presign_get(key), "format": "parquet", "rows": sum(counts.values())}
