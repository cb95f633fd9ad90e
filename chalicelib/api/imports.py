"""Bulk imports: POST/GET /api/imports, cancel, and their failed files. The logic is in chalicelib/services/imports.py."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

import msgspec
from chalice import Blueprint
from msgspec import Meta

from chalicelib.api import responses
from chalicelib.api.routing import PageQuery, created, cursor_id, paginated, parse_id, route
from chalicelib.api.training import duration_ms
from chalicelib.services import imports as import_service
from chalicelib.services.identity import current_principal

if TYPE_CHECKING:
    from chalicelib.db.tables import Import, ImportFailure

imports_api = Blueprint(__name__)


class CreateImport(msgspec.Struct, forbid_unknown_fields=True):
    prefix: Annotated[str, Meta(min_length=1, max_length=1000)] | None = None
    manifest: Annotated[str, Meta(min_length=1)] | None = None  # the CSV itself
    manifest_key: Annotated[str, Meta(min_length=1, max_length=1000)] | None = None  # a CSV (or .csv.gz) in S3
    format: Literal["keys", "inventory"] = "keys"
    columns: Annotated[str, Meta(min_length=1, max_length=1000)] | None = None  # an inventory's fileSchema


def import_json(row: Import) -> dict:
    return {
        "id": row.id,
        "status": row.status,
        "source": row.source,
        "listed": row.listed,
        "listing_done": row.listing_done,
        "registered": row.registered,
        "ready": row.ready,
        "failed": row.failed,
        "skipped": row.skipped,
        "partitions": row.partitions,
        "partitions_done": row.partitions_done,
        "progress": {
            "percent": import_service.progress_percent(row),
            "finished": row.ready + row.failed + row.skipped,
        },
        "error": row.error,
        "created_at": row.created_at,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
        "duration_ms": duration_ms(row.started_at, row.finished_at),
    }


def failure_json(row: ImportFailure) -> dict:
    return {"id": row.id, "key": row.key, "reason": row.reason, "created_at": row.created_at}


@route(
    imports_api,
    "/api/imports",
    methods=["POST"],
    body=CreateImport,
    tag="imports",
    summary="Register and ingest every image under a prefix of your storage, or named by a manifest "
    "(a CSV of keys, or an S3 Inventory CSV), on Dask; a re-run imports nothing twice",
    responses={202: "import queued", 403: "outside your storage", 413: "manifest too large"},
    response={202: responses.Import},
)
def create_import(body: CreateImport):
    row = import_service.create(current_principal(imports_api.current_request), msgspec.to_builtins(body))
    return created(import_json(row), f"/api/imports/{row.id}", status=202)


@route(
    imports_api,
    "/api/imports",
    methods=["GET"],
    query=PageQuery,
    tag="imports",
    summary="Your imports",
    response=responses.ImportPage,
)
def list_imports(query: PageQuery):
    rows = import_service.page(
        current_principal(imports_api.current_request), limit=query.limit + 1, before_id=cursor_id(query.cursor)
    )
    return paginated(rows, query.limit, import_json)


@route(
    imports_api,
    "/api/imports/{import_id}",
    methods=["GET"],
    tag="imports",
    summary="An import: listed, registered, ready, failed, skipped, progress",
    responses={404: "no such import"},
    response=responses.Import,
)
def get_import(import_id: str):
    number = parse_id(import_id, "import")
    return import_json(import_service.get(current_principal(imports_api.current_request), number))


@route(
    imports_api,
    "/api/imports/{import_id}/cancel",
    methods=["POST"],
    tag="imports",
    summary="Cancel an import: no more partitions are submitted; those running finish and are counted",
    responses={404: "no such import", 409: "already finished"},
    response=responses.Import,
)
def cancel_import(import_id: str):
    number = parse_id(import_id, "import")
    return import_json(import_service.cancel(current_principal(imports_api.current_request), number))


@route(
    imports_api,
    "/api/imports/{import_id}/failures",
    methods=["GET"],
    query=PageQuery,
    tag="imports",
    summary="The files an import could not ingest, each with the reason",
    responses={404: "no such import"},
    response=responses.ImportFailurePage,
)
def import_failures(import_id: str, query: PageQuery):
    number = parse_id(import_id, "import")
    rows = import_service.failures(
        current_principal(imports_api.current_request),
        number,
        limit=query.limit + 1,
        before_id=cursor_id(query.cursor),
    )
    return paginated(rows, query.limit, failure_json)
