"""Training jobs and batches: created by the API, advanced by jobs running on Dask (their status
changes are chalicelib/db/transitions.py's)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import BigInteger, Select, func, literal, select, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, insert
from sqlalchemy.orm import Session

from chalicelib.db import owned
from chalicelib.db.tables import BATCH_COUNTED_STATUSES, Batch, DatasetItem, Image, ProcessingTask, TrainingJob
from chalicelib.db.vocabulary import TASK_OPEN

BATCH_LOCK_SPACE = 0x6261  # pg_advisory_xact_lock's first key for batch creation ("ba")


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
    session: Session,
    batch: Batch,
    image_ids: Select[tuple[int]],
    *,
    kind: str,
    params: dict,
    model_id: int | None = None,
) -> tuple[int, int | None]:
    """One task per image the `image_ids` query names, made in the database by one INSERT … SELECT
    (no list of ids passes through Python); returns how many were made and the largest image id
    among them. (batch, image) is unique, so a retried chunk adds nothing twice; the batch's
    counters are updated by the insert's trigger. Give the query a LIMIT for a bounded statement
    (services.batches makes a prefix's tasks in keyset chunks)."""
    source = image_ids.subquery("source")
    rows = select(
        literal(batch.owner_id, BigInteger),
        source.c[0],
        literal(batch.id, BigInteger),
        literal(kind),
        literal(batch.operation),
        literal(params, JSONB),
        literal(model_id, BigInteger),
        literal("pending"),
    )
    columns = ("owner_id", "image_id", "batch_id", "kind", "operation", "params", "model_id", "status")
    made = (
        insert(ProcessingTask)
        .from_select(columns, rows)
        .on_conflict_do_nothing(
            index_elements=["batch_id", "image_id"], index_where=ProcessingTask.batch_id.isnot(None)
        )
        .returning(ProcessingTask.image_id)
        .cte("made")
    )
    count, last = session.execute(select(func.count(), func.max(made.c.image_id))).one()
    return count, last


def source_images(source: dict, owner_filter: int | None) -> tuple[Select, Any]:
    """The query of a prefix's or a dataset's image ids, and its id column (for keyset chunks)."""
    if "prefix" in source:
        prefix = source["prefix"]
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = select(Image.id).where(Image.key.like(escaped + "%", escape="\\"))
        if owner_filter is not None:
            query = query.where(Image.owner_id == owner_filter)
        return query, Image.id
    items = (
        select(DatasetItem.image_id)
        .where(DatasetItem.dataset_id == source["dataset_id"], DatasetItem.image_id.isnot(None))
        .distinct()
    )
    return items, DatasetItem.image_id


def count_at_most(session: Session, query: Select, most: int) -> int:
    """How many rows `query` gives, counting no further than `most` (a bounded scan)."""
    return session.scalar(select(func.count()).select_from(query.limit(most).subquery())) or 0


def tasks_made_through(session: Session, batch_id: int) -> int:
    """The largest image id among the batch's tasks (0 for none): chunks are made in image id order."""
    return (
        session.scalar(
            select(func.coalesce(func.max(ProcessingTask.image_id), 0)).where(ProcessingTask.batch_id == batch_id)
        )
        or 0
    )


def image_ids_in(ids: Iterable[int]) -> Select[tuple[int]]:
    """The add_batch_tasks query for a given list of image ids (a request body's, bounded by its size)."""
    return select(func.unnest(literal(sorted(set(ids)), ARRAY(BigInteger))))


def batch_counts(batch: Batch) -> dict[str, int]:
    """The batch's tasks by status, from its counters (one row, whatever the batch's size)."""
    return {status: getattr(batch, f"tasks_{status}") for status in BATCH_COUNTED_STATUSES}


def queued_tasks(session: Session, owner_id: int) -> int:
    """Tasks pending or running in the owner's unfinished batches (the per-user limit's use)."""
    return (
        session.scalar(
            select(func.coalesce(func.sum(Batch.tasks_pending + Batch.tasks_running), 0)).where(
                Batch.owner_id == owner_id, Batch.status.in_(("pending", "running"))
            )
        )
        or 0
    )


def lock_owner_batches(session: Session, owner_id: int) -> None:
    """Serialise batch creation per owner until the transaction ends (the per-user limit holds under races)."""
    session.execute(
        text("SELECT pg_advisory_xact_lock(CAST(:space AS integer), CAST(:owner AS integer))"),
        {"space": BATCH_LOCK_SPACE, "owner": owner_id % 2**31},
    )


def open_task_page(session: Session, batch_id: int, *, after_id: int, limit: int) -> list[int]:
    """The next `limit` unfinished task ids of the batch after `after_id`, in id order (keyset pages
    over the partial index ix_processing_tasks_batch_id_id_open: each page costs the same)."""
    return list(
        session.scalars(
            select(ProcessingTask.id)
            .where(
                ProcessingTask.batch_id == batch_id,
                ProcessingTask.status.in_(TASK_OPEN),
                ProcessingTask.id > after_id,
            )
            .order_by(ProcessingTask.id)
            .limit(limit)
        )
    )
