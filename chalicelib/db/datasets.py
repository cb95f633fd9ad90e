"""Datasets of labelled images (S3 keys with labels) for training and batches."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from chalicelib.db import owned
from chalicelib.db.tables import Dataset, DatasetItem, Image, TrainingJob


def create(
    session: Session,
    *,
    owner_id: int,
    name: str,
    description: str | None,
    source: dict,
    items: list[tuple[str, str, int | None]],
) -> Dataset:
    """A dataset with its (key, label, image_id) items, in one transaction."""
    dataset = Dataset(owner_id=owner_id, name=name, description=description, source=source)
    session.add(dataset)
    session.flush()
    for start in range(0, len(items), 5000):
        session.execute(
            insert(DatasetItem),
            [
                {"dataset_id": dataset.id, "key": key, "label": label, "image_id": image_id}
                for key, label, image_id in items[start : start + 5000]
            ],
        )
    return dataset


def name_taken(session: Session, owner_id: int, name: str) -> bool:
    query = select(func.count()).where(Dataset.owner_id == owner_id, Dataset.name == name)
    return session.execute(query).scalar_one() > 0


def get_for_owner(session: Session, dataset_id: int, owner_id: int | None) -> Dataset | None:
    return owned.get(session, Dataset, dataset_id, owner_id)


def list_for_owner(session: Session, owner_id: int | None, *, limit: int, before_id: int | None) -> list[Dataset]:
    return owned.page(session, Dataset, owner_id, limit=limit, before_id=before_id)


def label_counts(session: Session, dataset_id: int) -> dict[str, int]:
    rows = session.execute(
        select(DatasetItem.label, func.count())
        .where(DatasetItem.dataset_id == dataset_id)
        .group_by(DatasetItem.label)
        .order_by(DatasetItem.label)
    )
    return dict(rows.all())


def items(session: Session, dataset_id: int) -> list[tuple[str, str, int | None]]:
    rows = session.execute(
        select(DatasetItem.key, DatasetItem.label, DatasetItem.image_id)
        .where(DatasetItem.dataset_id == dataset_id)
        .order_by(DatasetItem.id)
    )
    return [(key, label, image_id) for key, label, image_id in rows]


def items_page(session: Session, dataset_id: int, *, after_id: int, limit: int) -> list[tuple[int, str, str]]:
    """(id, key, label) of up to `limit` items after item `after_id`, in id order (keyset pages:
    a training job reads a dataset of any size page by page)."""
    rows = session.execute(
        select(DatasetItem.id, DatasetItem.key, DatasetItem.label)
        .where(DatasetItem.dataset_id == dataset_id, DatasetItem.id > after_id)
        .order_by(DatasetItem.id)
        .limit(limit)
    )
    return [(item_id, key, label) for item_id, key, label in rows]


def training_job_ids(session: Session, dataset_id: int) -> list[int]:
    query = select(TrainingJob.id).where(TrainingJob.dataset_id == dataset_id).order_by(TrainingJob.id)
    return list(session.scalars(query))


def delete_dataset(session: Session, dataset: Dataset) -> None:
    session.execute(delete(DatasetItem).where(DatasetItem.dataset_id == dataset.id))
    session.delete(dataset)


def image_ids_by_key(session: Session, bucket: str, keys: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for start in range(0, len(keys), 5000):
        chunk = keys[start : start + 5000]
        found.update(
            session.execute(select(Image.key, Image.id).where(Image.bucket == bucket, Image.key.in_(chunk))).all()
        )
    return found
