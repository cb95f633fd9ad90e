"""Submitting batches, training jobs and imports to Dask, and what happens when the cluster cannot take them.

A `running` job whose driver the scheduler no longer holds (the scheduler restarted) is submitted
again when it is read, as POST /api/batches/{id}/resume does; its new driver runs only what is unfinished.

A submission the cluster cannot run (no scheduler, versions or code that differ, a worker that
cannot load chalicelib) fails the job at once with the reason; a job that no worker started within
PIXELAKE_DASK_START_TIMEOUT_S (no workers, or a submission lost on the way) fails with the reason
when it is next read. Either way the user sees `failed` and why, never a `pending` that lasts forever.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select

from chalicelib import compute
from chalicelib.config import get_settings
from chalicelib.db import transitions
from chalicelib.db.session import session_scope
from chalicelib.errors import ComputeUnavailable

log = logging.getLogger("pixelake.compute")


def training_key(job_id: int) -> str:
    return f"training-job-{job_id}"


def batch_key(batch_id: int) -> str:
    return f"batch-{batch_id}"


def submit_training_job(job_id: int) -> str | None:
    """Submit the job; returns the reason it failed when the cluster could not take it (recorded on the job)."""
    from chalicelib.services.dask_jobs import run_training_job

    try:
        compute.submit_job(run_training_job, job_id, key=training_key(job_id))
    except ComputeUnavailable as exc:
        return _fail_training_job(job_id, str(exc))
    return None


def submit_batch(batch_id: int) -> str | None:
    """Submit the batch; returns the reason it failed when the cluster could not take it (recorded on the batch)."""
    from chalicelib.services.dask_jobs import run_batch_job

    try:
        compute.submit_job(run_batch_job, batch_id, key=batch_key(batch_id))
    except ComputeUnavailable as exc:
        return _fail_batch(batch_id, str(exc))
    return None


def import_key(import_id: int) -> str:
    return f"import-{import_id}"


def submit_import(import_id: int) -> str | None:
    """Submit the import; returns the reason it failed when the cluster could not take it (recorded on the import)."""
    from chalicelib.services.dask_jobs import run_import_job

    try:
        compute.submit_job(run_import_job, import_id, key=import_key(import_id))
    except ComputeUnavailable as exc:
        return _fail_import(import_id, str(exc))
    return None


def recheck_training_job(job_id: int, *, status: str, created_at: datetime) -> None:
    """On a read: fail a job no worker started in time, or submit again one whose submission was
    lost or whose driver the scheduler lost (the job then trains again from the start)."""
    from chalicelib.db.tables import TrainingJob
    from chalicelib.services.dask_jobs import run_training_job

    key = training_key(job_id)
    _recheck(run_training_job, TrainingJob, job_id, key, _fail_training_job, "training job", status, created_at)


def recheck_batch(batch_id: int, *, status: str, created_at: datetime) -> None:
    from chalicelib.db.tables import Batch
    from chalicelib.services.dask_jobs import run_batch_job

    _recheck(run_batch_job, Batch, batch_id, batch_key(batch_id), _fail_batch, "batch", status, created_at)


def recheck_import(import_id: int, *, status: str, created_at: datetime) -> None:
    from chalicelib.db.tables import Import
    from chalicelib.services.dask_jobs import run_import_job

    _recheck(run_import_job, Import, import_id, import_key(import_id), _fail_import, "import", status, created_at)


def _recheck(job, table, row_id: int, key: str, fail, what: str, status: str, created_at: datetime) -> None:
    if status == "running":
        _resume_if_driver_lost(job, table, row_id, key, what)
        return
    if compute.start_timed_out(status, created_at):
        fail(row_id, _no_start_reason(what))
        return
    try:
        compute.resubmit_if_stalled(job, row_id, key=key, status=status, created_at=created_at)
    except ComputeUnavailable as exc:
        fail(row_id, str(exc))


def _resume_if_driver_lost(job, table, row_id: int, key: str, what: str) -> None:
    """Submit a running job again when the scheduler lost its driver (compute.resubmit_if_driver_lost,
    which says why a finished job is never submitted again). A scheduler that does not answer, or a
    cluster that cannot take the job, leaves it `running` (a later read tries again): the read answers."""

    def still_running() -> bool:
        with session_scope() as session:
            return session.scalar(select(table.status).where(table.id == row_id)) == "running"

    try:
        if compute.resubmit_if_driver_lost(job, row_id, key=key, still_running=still_running):
            log.warning("%s %s was running with no driver on the scheduler (restarted?): submitted again", what, row_id)
    except (ComputeUnavailable, OSError, TimeoutError) as exc:
        log.warning("%s %s: could not look for its driver on Dask or submit it again: %s", what, row_id, exc)


def _no_start_reason(what: str) -> str:
    timeout = get_settings().dask_start_timeout_s
    try:
        workers = f"the cluster has {compute.worker_count()} workers"
    except (ComputeUnavailable, OSError, TimeoutError) as exc:
        workers = f"the scheduler does not answer: {exc}"
    return f"no Dask worker started the {what} within {timeout} s ({workers}; PIXELAKE_DASK_START_TIMEOUT_S)"


def _fail_training_job(job_id: int, reason: str) -> str:
    log.error("training job %s failed before it started: %s", job_id, reason)
    with session_scope() as session:
        transitions.job_failed_to_start(transitions.on_session(session), job_id, reason)
    return reason


def _fail_import(import_id: int, reason: str) -> str:
    log.error("import %s failed before it started: %s", import_id, reason)
    with session_scope() as session:
        transitions.import_failed_to_start(transitions.on_session(session), import_id, reason)
    return reason


def _fail_batch(batch_id: int, reason: str) -> str:
    log.error("batch %s failed before it started: %s", batch_id, reason)
    with session_scope() as session:
        transitions.batch_failed_to_start(transitions.on_session(session), batch_id, reason)
    return reason
