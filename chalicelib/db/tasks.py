"""Processing tasks and their results: created by the API, run by the workers."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from chalicelib.db import owned, transitions
from chalicelib.db.tables import ProcessingTask, Result


def create(
    session: Session,
    *,
    owner_id: int,
    image_id: int,
    kind: str,
    operation: str,
    params: dict,
    model_id: int | None = None,
    batch_id: int | None = None,
) -> ProcessingTask:
    task = ProcessingTask(
        owner_id=owner_id,
        image_id=image_id,
        kind=kind,
        operation=operation,
        params=params,
        model_id=model_id,
        batch_id=batch_id,
        status="pending",
    )
    session.add(task)
    session.flush()
    return task


def get_for_owner(session: Session, task_id: int, owner_id: int | None) -> ProcessingTask | None:
    task = owned.get(
        session,
        ProcessingTask,
        task_id,
        owner_id,
        selectinload(ProcessingTask.results),
        selectinload(ProcessingTask.model),
    )
    settle_stalled(session, [task] if task is not None else [])
    return task


def list_for_image(session: Session, image_id: int, *, limit: int, before_id: int | None) -> list[ProcessingTask]:
    query = (
        select(ProcessingTask)
        .where(ProcessingTask.image_id == image_id)
        .options(selectinload(ProcessingTask.results), selectinload(ProcessingTask.model))
        .order_by(ProcessingTask.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        query = query.where(ProcessingTask.id < before_id)
    return settle_stalled(session, list(session.scalars(query)))


def settle_stalled(
    session: Session, tasks: list[ProcessingTask], *, stall_s: int | None = None
) -> list[ProcessingTask]:
    """Fail the running tasks whose last attempt started more than `stall_s` ago.

    Every attempt restarts `started_at`, and SQS redelivers a failed attempt's message after the
    visibility timeout; a task still running after maxReceiveCount × that timeout has had its
    message dead-lettered (the worker could not even record its last failure: the database was
    down). Nothing will run it again, so it is reported failed rather than running forever.
    """
    if stall_s is None:
        from chalicelib.config import get_settings

        stall_s = get_settings().task_stall_s
    now = datetime.now(UTC)
    for task in tasks:
        if task.status == "running" and task.started_at is not None:
            idle_s = (now - task.started_at).total_seconds()
            if idle_s > stall_s:
                transitions.task_failed(
                    transitions.on_session(session),
                    task.id,
                    f"no attempt has finished it: the last one started {idle_s / 60:.0f} minutes ago and "
                    f"its message was set aside after {task.attempts} attempts; submit the task again",
                )
                session.refresh(task, ["status", "error", "finished_at", "duration_ms", "updated_at"])
    return tasks


def latest_analyses(session: Session, image_id: int) -> dict[str, dict]:
    """The newest succeeded result of each analysis run on the image, by analyzer name."""
    query = (
        select(ProcessingTask.operation, ProcessingTask.id, Result.data, Result.confidence)
        .join(Result, Result.task_id == ProcessingTask.id)
        .where(
            ProcessingTask.image_id == image_id, ProcessingTask.kind == "analysis", ProcessingTask.status == "succeeded"
        )
        .order_by(ProcessingTask.id)
    )
    return {
        name: {"task_id": task_id, "confidence": confidence, **data}
        for name, task_id, data, confidence in session.execute(query)
    }


# Any constant: one process at a time refreshes the statistics summaries.
STATISTICS_REFRESH_LOCK = 0x5049584C


def refresh_statistics(session: Session, max_age_s: int) -> None:
    """Refresh the statistics summaries if they are older than max_age_s (models.STATISTICS_SUMMARIES).

    CONCURRENTLY: readers keep the previous summary meanwhile. When another transaction is
    refreshing already, serve what is there rather than wait.
    """
    from sqlalchemy import text

    from chalicelib.db.tables import STATISTICS_SUMMARIES

    age = session.execute(
        text("SELECT extract(epoch FROM clock_timestamp() - max(refreshed_at)) FROM processing_statistics_totals")
    ).scalar()
    if age is not None and age <= max_age_s:
        return
    if not session.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": STATISTICS_REFRESH_LOCK}).scalar():
        return
    for name in STATISTICS_SUMMARIES:
        session.execute(text(f"REFRESH MATERIALIZED VIEW CONCURRENTLY {name}"))


def statistics(session: Session, owner_id: int | None, *, max_age_s: int = 0) -> dict:
    """Images by status, tasks by operation and status with durations, and volume per day.

    Tasks come from the materialized summaries, at most max_age_s seconds old (`as_of`).
    """
    from sqlalchemy import text

    refresh_statistics(session, max_age_s)
    owner_clause = "" if owner_id is None else "WHERE owner_id = :owner"
    params = {} if owner_id is None else {"owner": owner_id}
    images: dict[str, int] = dict(
        session.execute(text(f"SELECT status, count(*) FROM images {owner_clause} GROUP BY status"), params).all()
    )
    tasks = (
        session.execute(
            text("""
        SELECT operation, status, task_count AS count, p50_duration_ms, p95_duration_ms
        FROM processing_statistics_totals WHERE owner_key = :owner_key
        ORDER BY operation, status"""),
            {"owner_key": owner_id or 0},
        )
        .mappings()
        .all()
    )
    per_day = (
        session.execute(
            text(f"""
        SELECT day::date AS day, sum(task_count)::bigint AS tasks, avg(avg_confidence) AS avg_confidence
        FROM processing_statistics_daily {owner_clause} GROUP BY day ORDER BY day DESC LIMIT 90"""),
            params,
        )
        .mappings()
        .all()
    )
    as_of = session.execute(text("SELECT min(refreshed_at) FROM processing_statistics_totals")).scalar()
    return {
        "images": {status: images.get(status, 0) for status in ("pending", "processing", "ready", "failed")},
        "tasks": [dict(row) for row in tasks],
        "per_day": [dict(row) for row in per_day],
        "as_of": as_of.isoformat() if as_of else None,
    }
