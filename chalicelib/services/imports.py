"""Bulk import of images that already sit in S3: a prefix of the caller's own area, or a manifest
(a CSV of keys, or an S3 Inventory CSV), registered and ingested in partitions on Dask.

`create` checks the source (403 for a prefix or manifest outside the caller's area, 400 for a
bad one) and submits the import (chalicelib/services/import_runs.py does the work on Dask);
`get`, `page` and `failures` read its counters (one row: constant time at any size) and its
failed files.

Idempotent: an image's key is unique, so a re-run registers and ingests nothing twice: what an
earlier import or upload finished counts as `skipped`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalicelib import storage
from chalicelib.config import get_settings
from chalicelib.db.session import session_scope
from chalicelib.db.vocabulary import IMPORT_FINISHED
from chalicelib.errors import ApiError, found

if TYPE_CHECKING:
    from chalicelib.db.tables import Import, ImportFailure
    from chalicelib.services.identity import Principal

SOURCES = ("prefix", "manifest", "manifest_key")


def create(principal: Principal, request: dict[str, Any]) -> Import:
    """A pending import of the request's source, submitted to the cluster. 400 for a bad request,
    403 for a prefix or manifest outside the caller's storage, 413 for a manifest too large."""
    from chalicelib.db import imports as import_rows
    from chalicelib.services import dask_submit
    from chalicelib.services.access import check_own_area
    from chalicelib.services.import_runs import INVENTORY_COLUMNS, inventory_columns

    given = [name for name in SOURCES if request.get(name) is not None]
    if len(given) != 1:
        raise ApiError(400, "invalid_request", "give exactly one of 'prefix', 'manifest' or 'manifest_key'")
    manifest_format = request.get("format") or "keys"
    columns = request.get("columns") or INVENTORY_COLUMNS
    source: dict[str, Any]
    if request.get("prefix") is not None:
        check_own_area(principal, request["prefix"])
        source = {"prefix": request["prefix"]}
    elif manifest_format == "inventory":
        inventory_columns(columns)  # a 400 now, not a failed import later
        source = {"format": manifest_format, "columns": columns}
    else:
        source = {"format": manifest_format}
    manifest = request.get("manifest")
    if manifest is not None and len(manifest.encode()) > get_settings().max_import_manifest_bytes:
        limit = get_settings().max_import_manifest_bytes
        raise ApiError(
            413, "manifest_too_large", f"the manifest is over {limit:,} bytes: put it in S3, send manifest_key"
        )
    if request.get("manifest_key") is not None:
        check_own_area(principal, request["manifest_key"])
        if storage.head(request["manifest_key"]) is None:
            raise ApiError(400, "invalid_request", f"the manifest {request['manifest_key']!r} does not exist")
        source["manifest_key"] = request["manifest_key"]
    with session_scope() as session:
        row = import_rows.create(session, owner_id=principal.user_id, source=source)
        if manifest is not None:
            key = storage.import_manifest_key(principal.user_id, row.id)
            storage.put(key, manifest.encode(), "text/csv")
            import_rows.set_source(session, row.id, {**source, "manifest_key": key, "sent_with_request": True})
        import_id = row.id
    dask_submit.submit_import(import_id)  # a cluster that cannot take it fails the import, with the reason
    return get(principal, import_id)


def get(principal: Principal, import_id: int) -> Import:
    """One of the caller's imports (404 otherwise); submitted again if its submission was lost."""
    from chalicelib.db import imports as import_rows
    from chalicelib.services import dask_submit

    with session_scope() as session:
        row = found(import_rows.get(session, import_id, principal.owner_filter), "import", import_id)
    dask_submit.recheck_import(import_id, status=row.status, created_at=row.created_at)
    if row.status == "pending":
        with session_scope() as session:  # the recheck may have failed it
            row = found(import_rows.get(session, import_id, principal.owner_filter), "import", import_id)
    return row


def cancel(principal: Principal, import_id: int) -> Import:
    """Cancel one of the caller's unfinished imports: its driver submits no more partitions, those
    running finish and are counted; 409 once it is finished (404: not the caller's)."""
    from chalicelib.db import imports as import_rows
    from chalicelib.db import transitions

    with session_scope() as session:
        row = found(import_rows.get(session, import_id, principal.owner_filter), "import", import_id)
        if not transitions.import_cancelled(transitions.on_session(session), import_id):
            raise ApiError(409, "import_finished", f"import {import_id} is already {row.status}")
        session.refresh(row)
        return row


def page(principal: Principal, *, limit: int, before_id: int | None) -> list[Import]:
    from chalicelib.db import imports as import_rows

    with session_scope() as session:
        return import_rows.page(session, principal.owner_filter, limit=limit, before_id=before_id)


def failures(principal: Principal, import_id: int, *, limit: int, before_id: int | None) -> list[ImportFailure]:
    """The files of one of the caller's imports that failed, with the reason, newest first."""
    from chalicelib.db import imports as import_rows

    with session_scope() as session:
        found(import_rows.get(session, import_id, principal.owner_filter), "import", import_id)
        return import_rows.failures(session, import_id, limit=limit, before_id=before_id)


def progress_percent(row: Import) -> int:
    """Of the files listed so far, the share counted; 100 only once the listing is complete too."""
    finished = row.ready + row.failed + row.skipped
    if row.status in IMPORT_FINISHED:
        return 100
    if not row.listed:
        return 0
    return (
        min(99, round(100 * finished / row.listed)) if row.listing_done else min(50, round(50 * finished / row.listed))
    )
