"""Bulk imports: created and read by the API; advanced by the import job on Dask (its status
changes and counters are chalicelib/db/transitions.py's)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from chalicelib.db import owned
from chalicelib.db.tables import Import, ImportFailure


def create(session: Session, *, owner_id: int, source: dict) -> Import:
    row = Import(owner_id=owner_id, source=source, status="pending")
    session.add(row)
    session.flush()
    return row


def set_source(session: Session, import_id: int, source: dict) -> None:
    """The source once the manifest sent in the request is stored (its key names the import)."""
    row = session.get(Import, import_id)
    assert row is not None  # created in this transaction
    row.source = source


def get(session: Session, import_id: int, owner_id: int | None) -> Import | None:
    return owned.get(session, Import, import_id, owner_id)


def page(session: Session, owner_id: int | None, *, limit: int, before_id: int | None) -> list[Import]:
    return owned.page(session, Import, owner_id, limit=limit, before_id=before_id)


def failures(session: Session, import_id: int, *, limit: int, before_id: int | None) -> list[ImportFailure]:
    """The import's failed files, newest first, keyset-paginated on id."""
    query = select(ImportFailure).where(ImportFailure.import_id == import_id)
    if before_id is not None:
        query = query.where(ImportFailure.id < before_id)
    return list(session.scalars(query.order_by(ImportFailure.id.desc()).limit(limit)))
