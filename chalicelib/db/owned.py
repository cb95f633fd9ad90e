"""Rows that belong to a user: fetch one, or a newest-first page, visible to an owner.

`owner_id` None means an administrator: every owner's rows. Pages are keyset-paginated on id
(stable under inserts, fast at any depth).
"""

from __future__ import annotations

from typing import ClassVar, Protocol

from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute, Session


class OwnedRow(Protocol):
    """A mapped table with an integer id and its owner's user id (images, tasks, batches, datasets, jobs).

    Declared as the class-level columns the queries below compare (`Image.id == 3`), which is what an
    `id: Mapped[int] = mapped_column(...)` declaration gives on the class.
    """

    id: ClassVar[InstrumentedAttribute[int]]
    owner_id: ClassVar[InstrumentedAttribute[int]]


def get[Row: OwnedRow](session: Session, model: type[Row], row_id: int, owner_id: int | None, *options) -> Row | None:
    query = select(model).where(model.id == row_id).options(*options)
    if owner_id is not None:
        query = query.where(model.owner_id == owner_id)
    return session.scalars(query).one_or_none()


def page[Row: OwnedRow](
    session: Session,
    model: type[Row],
    owner_id: int | None,
    *,
    limit: int,
    before_id: int | None,
    where: tuple = (),
    options: tuple = (),
) -> list[Row]:
    query = select(model).where(*where).options(*options).order_by(model.id.desc()).limit(limit)
    if owner_id is not None:
        query = query.where(model.owner_id == owner_id)
    if before_id is not None:
        query = query.where(model.id < before_id)
    return list(session.scalars(query))
