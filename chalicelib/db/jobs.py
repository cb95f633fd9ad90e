"""Training jobs and batches: created by the API, advanced by jobs running on Dask (their status
changes are chalicelib/db/transitions.py's)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from chalicelib.db import owned
from chalicelib.db.tables import Batch, ProcessingTask, TrainingJob


def get_job(session: Session, job_id: int, owner_id: int | None) -> TrainingJob | None:
    return owned.get(session, TrainingJob, job_id, owner_id)


def list_jobs(session: Session, owner_id: int | None, *, limit: int, before_id: int | None) -> list[TrainingJob]:
    return owned.page(session, TrainingJob, owner_id, limit=limit, before_id=before_id)


def get_batch(session: Session, batch_id: int, owner_id: int | None) -> Batch | None:
    return owned.get(session, Batch, batch_id, owner_id)


def list_batches(session: Session, owner_id: int | None, *, limit: int, before_id: int | None) -> list[Batch]:
    return owned.page(session, Batch, owner_id, limit=limit, before_id=before_id)


def find_batch(session: Session, owner_id: int, request_hash: str) -> Batch | None:
    return session.scalars(
        select(Batch).where(Batch.owner_id == owner_id, Batch.request_hash == request_hash)
    ).one_or_none()


def add_batch_tasks(
    session: Session, batch: Batch, *, kind: str, image_ids: list[int], params: dict, model_id: int | None = None
) -> None:
    """One task per image; (batch, image) is unique, so a retried submission adds nothing twice."""
    for start in range(0, len(image_ids), 5000):
        session.execute(
            insert(ProcessingTask)
            .values(
                [
                    {
                        "owner_id": batch.owner_id,
                        "image_id": image_id,
                        "batch_id": batch.id,
                        "kind": kind,
                        "operation": batch.operation,
                        "params": params,
                        "model_id": model_id,
                        "status": "pending",
                    }
                    for image_id in image_ids[start : start + 5000]
                ]
            )
            .on_conflict_do_nothing(
                index_elements=["batch_id", "image_id"], index_where=ProcessingTask.batch_id.isnot(None)
            )
        )


def batch_counts(session: Session, batch_id: int) -> dict[str, int]:
    rows = session.execute(
        select(ProcessingTask.status, func.count())
        .where(ProcessingTask.batch_id == batch_id)
        .group_by(ProcessingTask.status)
    )
    counts = dict(rows.all())
    return {status: counts.get(status, 0) for status in ("pending", "running", "succeeded", "failed")}


def pending_batch_tasks(session: Session, batch_id: int) -> list[int]:
    return list(
        session.scalars(
            select(ProcessingTask.id)
            .where(ProcessingTask.batch_id == batch_id, ProcessingTask.status.in_(("pending", "running")))
            .order_by(ProcessingTask.id)
        )
    )
