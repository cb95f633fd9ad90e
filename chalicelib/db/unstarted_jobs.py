"""State changes for batches and training jobs that the Dask cluster never started.

A job is failed here only while it is still `pending`: a worker that took it meanwhile wins.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from chalicelib.db.tables import Batch, ProcessingTask, TrainingJob


def fail_pending_job(session: Session, job_id: int, reason: str) -> bool:
    failed = session.scalar(
        update(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.status == "pending")
        .values(status="failed", stage="failed", error=reason, finished_at=datetime.now(UTC))
        .returning(TrainingJob.id)
    )
    return failed is not None


def fail_pending_batch(session: Session, batch_id: int, reason: str) -> bool:
    """Fail the batch and the tasks it never started, with the same reason (its counts stay true)."""
    finished = datetime.now(UTC)
    failed = session.scalar(
        update(Batch)
        .where(Batch.id == batch_id, Batch.status == "pending")
        .values(status="failed", error=reason, finished_at=finished)
        .returning(Batch.id)
    )
    if failed is None:
        return False
    session.execute(
        update(ProcessingTask)
        .where(ProcessingTask.batch_id == batch_id, ProcessingTask.status == "pending")
        .values(status="failed", error=reason, finished_at=finished)
    )
    return True
