"""Every status change of images, tasks, training jobs, batches and imports: one function, one statement.

Each path runs the same statement: the ingest and queue workers through their pg8000
connection (chalicelib/db/direct.py, no SQLAlchemy in their cold start), the api and the Dask
jobs through their ORM session's connection (`on_session`). Times come from the database's
clock (started and finished are written by different processes), and a finished row is never
changed again: a late or duplicated writer changes nothing.

Imports nothing but the vocabulary: measured, the SQL text costs the workers' cold start
nothing, where importing SQLAlchemy costs ~270 ms (benchmarks/cold_starts.py).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Protocol

from chalicelib.db.vocabulary import IMPORT_FINISHED, JOB_FINISHED, TASK_FINISHED

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


class Runner(Protocol):
    """What runs a statement: pg8000.native.Connection, or `on_session(session)`."""

    def run(self, sql: str, **params: Any) -> Any: ...


class SessionRunner:
    """Statements run on an ORM session's connection, inside the session's transaction."""

    def __init__(self, session: Session):
        self.session = session

    def run(self, sql: str, **params: Any) -> list[tuple] | None:
        from sqlalchemy import text

        self.session.flush()  # the statement sees the session's pending rows
        result = self.session.connection().execute(text(sql), params)
        return [tuple(row) for row in result.all()] if result.returns_rows else None


def on_session(session: Session) -> SessionRunner:
    return SessionRunner(session)


def _sql_list(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{value}'" for value in values)


def as_json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


_TASK_OPEN = f"status NOT IN ({_sql_list(TASK_FINISHED)})"
_JOB_OPEN = f"status NOT IN ({_sql_list(JOB_FINISHED)})"
# A task's duration from the database's clock: started and finished in different transactions.
_TASK_FINISH = (
    "finished_at = clock_timestamp(), updated_at = now(), "
    "duration_ms = floor(extract(epoch FROM clock_timestamp() - coalesce(started_at, clock_timestamp())) * 1000)"
)

# --- images: pending → ready | failed (ingest), failed when dead-lettered, expired (sweeps) ------


def image_failed(db: Runner, image_id: int, reason: str, *, etag: str | None, size_bytes: int) -> str:
    db.run(
        "UPDATE images SET status = 'failed', error = :error, etag = :etag, size_bytes = :size_bytes, "
        "processed_at = now(), updated_at = now() WHERE id = :id",
        error=reason,
        etag=etag,
        size_bytes=size_bytes,
        id=image_id,
    )
    return "failed"


def image_ready(
    db: Runner, image_id: int, outcome: Any, thumbnails: list[dict], *, etag: str | None, size_bytes: int
) -> str:
    """Record what the ingest found (chalicelib.imaging.ingest's outcome) and the stored thumbnails."""
    db.run(
        "UPDATE images SET status = 'ready', error = NULL, etag = :etag, size_bytes = :size_bytes, "
        "format = :format, content_type = :content_type, width = :width, height = :height, mode = :mode, "
        "sha256 = :sha256, phash = :phash, metadata = CAST(:metadata AS jsonb), "
        "thumbnails = CAST(:thumbnails AS jsonb), processed_at = now(), updated_at = now() WHERE id = :id",
        etag=etag,
        size_bytes=size_bytes,
        format=outcome.format,
        content_type=outcome.content_type,
        width=outcome.width,
        height=outcome.height,
        mode=outcome.mode,
        sha256=outcome.sha256,
        phash=outcome.phash,
        metadata=as_json(outcome.metadata),
        thumbnails=as_json(thumbnails),
        id=image_id,
    )
    return "ready"


def image_dead_lettered(db: Runner, *, bucket: str, key: str, reason: str) -> int | None:
    """An upload whose ingest message was dead-lettered: failed with the reason, if no ingest
    finished it. The etag is cleared so that a redriven message ingests it again (an ingest skips
    a finished image only when the etag matches). Returns the image id it failed, else None."""
    rows = db.run(
        "UPDATE images SET status = 'failed', error = :error, etag = NULL, processed_at = now(), updated_at = now() "
        "WHERE bucket = :bucket AND key = :key AND status IN ('pending', 'processing') RETURNING id",
        error=reason,
        bucket=bucket,
        key=key,
    )
    return rows[0][0] if rows else None


def image_expired(db: Runner, image_id: int, reason: str) -> bool:
    """A presigned upload that never arrived: `expired`, unless an ingest got to it meanwhile."""
    rows = db.run(
        "UPDATE images SET status = 'expired', error = :error, updated_at = now() "
        "WHERE id = :id AND status = 'pending' RETURNING id",
        error=reason,
        id=image_id,
    )
    return bool(rows)


# --- tasks: pending → running → succeeded | failed (worker, Dask, api) --------------------------

TASK_COLUMNS = ("id", "owner_id", "image_id", "model_id", "kind", "operation", "params", "status", "attempts")


def task_running(db: Runner, task_id: int) -> dict | None:
    """Start an attempt: the task as a dict (attempts = this attempt's number), or None when it
    is finished (a redelivered message) or gone. The row lock makes a concurrent claim wait."""
    rows = db.run(
        "UPDATE processing_tasks SET status = 'running', started_at = clock_timestamp(), "
        f"attempts = attempts + 1, updated_at = now() WHERE id = :id AND {_TASK_OPEN} "
        f"RETURNING {', '.join(TASK_COLUMNS)}",
        id=task_id,
    )
    return dict(zip(TASK_COLUMNS, rows[0], strict=True)) if rows else None


def _tasks_finished(db: Runner, status: str, reason: str, where: str, **params: Any) -> int:
    """Finish the tasks `where` names with the status and reason; how many it finished."""
    rows = db.run(
        f"UPDATE processing_tasks SET status = '{status}', error = :error, {_TASK_FINISH} WHERE {where} RETURNING id",
        error=reason,
        **params,
    )
    return len(rows or [])


def task_failed(db: Runner, task_id: int, reason: str) -> bool:
    """Fail an unfinished task with the reason; False when it had finished already."""
    return bool(_tasks_finished(db, "failed", reason, f"id = :id AND {_TASK_OPEN}", id=task_id))


def task_succeeded(db: Runner, task_id: int) -> None:
    """The task's results are written (chalicelib.db.direct.succeed_task): it succeeded."""
    db.run(
        f"UPDATE processing_tasks SET status = 'succeeded', error = NULL, {_TASK_FINISH} WHERE id = :id",
        id=task_id,
    )


# --- training jobs: pending → running → succeeded | failed | cancelled (Dask, api) ---------------

JOB_SPEC_COLUMNS = ("owner_id", "dataset_id", "model_name", "algorithm", "features", "params", "test_size", "seed")


def job_running(db: Runner, job_id: int) -> dict | None:
    """Start the job: what it trains (JOB_SPEC_COLUMNS), or None when it is finished or gone."""
    rows = db.run(
        "UPDATE training_jobs SET status = 'running', started_at = clock_timestamp(), stage = 'loading', "
        f"progress = 0, updated_at = now() WHERE id = :id AND {_JOB_OPEN} RETURNING {', '.join(JOB_SPEC_COLUMNS)}",
        id=job_id,
    )
    return dict(zip(JOB_SPEC_COLUMNS, rows[0], strict=True)) if rows else None


def job_progress(db: Runner, job_id: int, *, progress: int, stage: str) -> str:
    """Record progress unless the job was cancelled meanwhile; returns the job's status."""
    rows = db.run(
        "UPDATE training_jobs SET progress = :progress, stage = :stage, updated_at = now() "
        f"WHERE id = :id AND {_JOB_OPEN} RETURNING status",
        progress=progress,
        stage=stage,
        id=job_id,
    )
    return rows[0][0] if rows else "cancelled"


def job_finished(
    db: Runner,
    job_id: int,
    status: str,
    *,
    error: str | None = None,
    metrics: dict | None = None,
    model_id: int | None = None,
) -> bool:
    """Finish a job (succeeded, failed or cancelled) unless it finished meanwhile: a cancel wins
    over a late result. False when it had finished already."""
    if status not in JOB_FINISHED:
        raise ValueError(f"{status!r} is not a finished status")
    progress = ", progress = 100" if status == "succeeded" else ""
    rows = db.run(
        "UPDATE training_jobs SET status = :status, error = :error, stage = :status, "
        "finished_at = clock_timestamp(), updated_at = now(), "
        "metrics = coalesce(CAST(:metrics AS jsonb), metrics), model_id = coalesce(CAST(:model_id AS bigint), model_id)"
        f"{progress} WHERE id = :id AND {_JOB_OPEN} RETURNING id",
        status=status,
        error=error,
        metrics=as_json(metrics),
        model_id=model_id,
        id=job_id,
    )
    return bool(rows)


# --- batches: pending → running → succeeded | failed | cancelled (Dask, api) --------------------
# The batch's counts by task status (batches.tasks_*) are kept by triggers in each task statement
# (chalicelib/db/tables.py BATCH_TASK_COUNTS): these statements read them, never count tasks.


def batch_running(db: Runner, batch_id: int) -> bool:
    """Start (or, resubmitted, resume) the batch; False when it is finished or gone."""
    rows = db.run(
        "UPDATE batches SET status = 'running', started_at = coalesce(started_at, clock_timestamp()), "
        f"updated_at = now() WHERE id = :id AND {_JOB_OPEN} RETURNING id",
        id=batch_id,
    )
    return bool(rows)


def batch_finished(db: Runner, batch_id: int) -> str:
    """Finish a running batch once none of its tasks is pending or running: `succeeded`, or
    `failed` when none succeeded (its counts say how many failed). Returns the batch's status:
    still `running` while tasks are unfinished, `cancelled` when it was cancelled meanwhile."""
    rows = db.run(
        "UPDATE batches SET status = CASE WHEN tasks_succeeded > 0 THEN 'succeeded' ELSE 'failed' END, "
        "error = CASE WHEN tasks_succeeded > 0 THEN NULL ELSE 'all ' || tasks_failed || "
        "' tasks failed (see each task''s error)' END, finished_at = clock_timestamp(), updated_at = now() "
        f"WHERE id = :id AND {_JOB_OPEN} AND tasks_pending = 0 AND tasks_running = 0 RETURNING status",
        id=batch_id,
    )
    if rows:
        return rows[0][0]
    rows = db.run("SELECT status FROM batches WHERE id = :id", id=batch_id)
    return rows[0][0] if rows else "skipped"


def batch_cancelled(db: Runner, batch_id: int) -> bool:
    """Cancel an unfinished batch: its tasks not yet started end `cancelled`, the batch too (its
    dispatcher stops at its next page; tasks already running finish and are counted). False when
    it had finished already.

    Two statements in one transaction, tasks first: a worker's transition locks its task and
    then (the counters' trigger) the batch row, so locking in the same order cannot deadlock."""
    db.run(
        "UPDATE processing_tasks SET status = 'cancelled', error = 'the batch was cancelled', "
        f"finished_at = clock_timestamp(), updated_at = now() WHERE batch_id = :id AND status = 'pending' "
        f"AND EXISTS (SELECT 1 FROM batches WHERE id = :id AND {_JOB_OPEN})",
        id=batch_id,
    )
    rows = db.run(
        "UPDATE batches SET status = 'cancelled', error = 'cancelled', finished_at = clock_timestamp(), "
        f"updated_at = now() WHERE id = :id AND {_JOB_OPEN} RETURNING id",
        id=batch_id,
    )
    return bool(rows)


def batch_open_tasks_failed(db: Runner, batch_id: int, reason: str) -> int:
    """The tasks a running batch's dispatcher could not get finished (chalicelib.services.dask_jobs): failed with the reason."""
    return _tasks_finished(db, "failed", reason, f"batch_id = :id AND {_TASK_OPEN}", id=batch_id)


def batch_leftovers_cancelled(db: Runner, batch_id: int) -> int:
    """After a cancelled batch's driver stopped: its tasks still open belong to no live attempt (made
    by a chunk that committed after the cancel, or `running` on a worker that died) and end
    `cancelled`, so the batch's counts add up. Returns how many it cancelled."""
    return _tasks_finished(
        db,
        "cancelled",
        "the batch was cancelled",
        f"batch_id = :id AND {_TASK_OPEN} AND EXISTS (SELECT 1 FROM batches WHERE id = :id AND status = 'cancelled')",
        id=batch_id,
    )


def job_failed_to_start(db: Runner, job_id: int, reason: str) -> bool:
    """A pending training job the cluster could not take, or that no worker started in time."""
    rows = db.run(
        "UPDATE training_jobs SET status = 'failed', stage = 'failed', error = :error, "
        "finished_at = clock_timestamp(), updated_at = now() WHERE id = :id AND status = 'pending' RETURNING id",
        id=job_id,
        error=reason,
    )
    return bool(rows)


def batch_failed_to_start(db: Runner, batch_id: int, reason: str) -> bool:
    """A pending batch the cluster could not take: it and the tasks it never started fail with the
    reason (tasks first, the lock order of batch_cancelled)."""
    db.run(
        "UPDATE processing_tasks SET status = 'failed', error = :error, finished_at = clock_timestamp(), "
        "updated_at = now() WHERE batch_id = :id AND status = 'pending' "
        "AND EXISTS (SELECT 1 FROM batches WHERE id = :id AND status = 'pending')",
        id=batch_id,
        error=reason,
    )
    rows = db.run(
        "UPDATE batches SET status = 'failed', error = :error, finished_at = clock_timestamp(), "
        "updated_at = now() WHERE id = :id AND status = 'pending' RETURNING id",
        id=batch_id,
        error=reason,
    )
    return bool(rows)


# --- bulk imports: pending → running → succeeded | completed_with_failures | failed | cancelled ----
# The counters grow as partitions finish: each partition adds its counts once (`import_partitions`
# is keyed by partition number), so a retried partition or a restarted driver counts nothing twice.

_IMPORT_OPEN = f"status NOT IN ({_sql_list(IMPORT_FINISHED)})"
IMPORT_SPEC_COLUMNS = ("owner_id", "source")
IMPORT_COUNTERS = ("registered", "ready", "failed", "skipped")


def import_running(db: Runner, import_id: int) -> dict | None:
    """Start (or, restarted, resume) the import: its owner and source, or None when it is finished or gone."""
    rows = db.run(
        "UPDATE imports SET status = 'running', started_at = coalesce(started_at, clock_timestamp()), "
        f"updated_at = now() WHERE id = :id AND {_IMPORT_OPEN} RETURNING {', '.join(IMPORT_SPEC_COLUMNS)}",
        id=import_id,
    )
    return dict(zip(IMPORT_SPEC_COLUMNS, rows[0], strict=True)) if rows else None


def import_listed(db: Runner, import_id: int, *, listed: int, partitions: int, done: bool) -> None:
    """How far the listing got; never lowered (a restarted driver lists again from the start)."""
    db.run(
        "UPDATE imports SET listed = GREATEST(listed, :listed), partitions = GREATEST(partitions, :partitions), "
        "listing_done = listing_done OR :done, updated_at = now() WHERE id = :id",
        listed=listed,
        partitions=partitions,
        done=done,
        id=import_id,
    )


def import_partition_counted(
    db: Runner, import_id: int, number: int, counts: dict[str, int], failures: list[dict]
) -> bool:
    """Add a finished partition's counts and failed files ({key, reason}) to its import, once.
    False when this partition had been counted already (a retry): nothing changes."""
    rows = db.run(
        "WITH counted AS (INSERT INTO import_partitions (import_id, number) VALUES (:id, :number) "
        "ON CONFLICT DO NOTHING RETURNING import_id), "
        "failures AS (INSERT INTO import_failures (import_id, key, reason) "
        "SELECT :id, f->>'key', f->>'reason' FROM jsonb_array_elements(CAST(:failures AS jsonb)) f "
        "WHERE EXISTS (SELECT 1 FROM counted) ON CONFLICT (import_id, key) DO NOTHING) "
        "UPDATE imports SET registered = registered + :registered, ready = ready + :ready, "
        "failed = failed + :failed, skipped = skipped + :skipped, partitions_done = partitions_done + 1, "
        "updated_at = now() WHERE id IN (SELECT import_id FROM counted) RETURNING id",
        id=import_id,
        number=number,
        failures=as_json(failures),
        **{name: counts[name] for name in IMPORT_COUNTERS},
    )
    return bool(rows)


def import_partition_is_counted(db: Runner, import_id: int, number: int) -> bool:
    return bool(
        db.run(
            "SELECT 1 FROM import_partitions WHERE import_id = :id AND number = :number", id=import_id, number=number
        )
    )


def import_finished(db: Runner, import_id: int, *, error: str | None = None) -> str:
    """Every partition is counted (or the listing failed, `error`): `succeeded` when no file failed,
    `completed_with_failures` when some did and others were imported or there already, `failed`
    when nothing was, nothing was found, or the listing failed."""
    rows = db.run(
        "UPDATE imports SET status = CASE WHEN CAST(:error AS text) IS NOT NULL OR listed = 0 THEN 'failed' "
        "WHEN failed = 0 THEN 'succeeded' WHEN ready + skipped > 0 THEN 'completed_with_failures' ELSE 'failed' END, "
        "error = CASE WHEN CAST(:error AS text) IS NOT NULL THEN CAST(:error AS text) "
        "WHEN listed = 0 THEN 'no objects were found to import' "
        "WHEN failed > 0 AND ready + skipped = 0 THEN 'all ' || failed || ' files failed (see the failures)' END, "
        f"finished_at = clock_timestamp(), updated_at = now() WHERE id = :id AND {_IMPORT_OPEN} RETURNING status",
        error=error,
        id=import_id,
    )
    return rows[0][0] if rows else "skipped"


def import_cancelled(db: Runner, import_id: int) -> bool:
    """Cancel an unfinished import: its driver submits no more partitions (it reads the status
    between partitions); those running finish and add their counts. False when it had finished."""
    rows = db.run(
        "UPDATE imports SET status = 'cancelled', error = 'cancelled', finished_at = clock_timestamp(), "
        f"updated_at = now() WHERE id = :id AND {_IMPORT_OPEN} RETURNING id",
        id=import_id,
    )
    return bool(rows)


def import_status(db: Runner, import_id: int) -> str | None:
    """The import's status (its driver asks between partitions whether it was cancelled)."""
    rows = db.run("SELECT status FROM imports WHERE id = :id", id=import_id)
    return rows[0][0] if rows else None


def import_failed_to_start(db: Runner, import_id: int, reason: str) -> bool:
    """A pending import the cluster could not take, or that no worker started in time."""
    rows = db.run(
        "UPDATE imports SET status = 'failed', error = :error, finished_at = clock_timestamp(), updated_at = now() "
        "WHERE id = :id AND status = 'pending' RETURNING id",
        id=import_id,
        error=reason,
    )
    return bool(rows)
