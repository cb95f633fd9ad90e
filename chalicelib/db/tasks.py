"""Processing tasks and their results: created by the API, run by the workers."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, selectinload

from chalicelib.db.models import ProcessingTask, Result

FINISHED = ("succeeded", "failed")


def create(session: Session, *, owner_id: int, image_id: int, kind: str, operation: str, params: dict,
           model_id: int | None = None, batch_id: int | None = None) -> ProcessingTask:
    task = ProcessingTask(owner_id=owner_id, image_id=image_id, kind=kind, operation=operation, params=params,
                          model_id=model_id, batch_id=batch_id, status="pending")
    session.add(task)
    session.flush()
    return task


def get_for_owner(session: Session, task_id: int, owner_id: int | None) -> ProcessingTask | None:
    query = select(ProcessingTask).where(ProcessingTask.id == task_id).options(selectinload(ProcessingTask.results))
    if owner_id is not None:
        query = query.where(ProcessingTask.owner_id == owner_id)
    return session.scalars(query).one_or_none()


def list_for_image(session: Session, image_id: int, *, limit: int, before_id: int | None) -> list[ProcessingTask]:
    query = (select(ProcessingTask).where(ProcessingTask.image_id == image_id)
             .options(selectinload(ProcessingTask.results)).order_by(ProcessingTask.id.desc()).limit(limit))
    if before_id is not None:
        query = query.where(ProcessingTask.id < before_id)
    return list(session.scalars(query))


def claim(session: Session, task_id: int) -> ProcessingTask | None:
    """Mark the task running, unless it is finished (a redelivered message) or gone."""
    task = session.scalars(select(ProcessingTask).where(ProcessingTask.id == task_id).with_for_update()).one_or_none()
    if task is None or task.status in FINISHED:
        return None
    task.status = "running"
    task.started_at = datetime.now(timezone.utc)
    task.attempts += 1
    return task


def _finish(task: ProcessingTask, status: str, error: str | None) -> None:
    task.status = status
    task.error = error
    task.finished_at = datetime.now(timezone.utc)
    started = task.started_at or task.finished_at
    task.duration_ms = int((task.finished_at - started).total_seconds() * 1000)


def succeed(session: Session, task: ProcessingTask, results: list[Result]) -> None:
    # A retry after a crash may have written results already: replace them, never duplicate.
    session.execute(delete(Result).where(Result.task_id == task.id))
    for result in results:
        result.task_id = task.id
        result.image_id = task.image_id
        session.add(result)
    _finish(task, "succeeded", None)


def fail(task: ProcessingTask, reason: str) -> None:
    _finish(task, "failed", reason)
