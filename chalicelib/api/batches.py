"""Batches: POST/GET /api/batches, cancel, resume and their Parquet export. The logic is in chalicelib/services/batches.py."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from chalice import Blueprint, Response
from msgspec import Meta

from chalicelib.api import responses
from chalicelib.api.routing import PageQuery, created, cursor_id, paginated, parse_id, route, to_json
from chalicelib.api.training import duration_ms
from chalicelib.services import batches as batch_service
from chalicelib.services.identity import current_principal

if TYPE_CHECKING:
    from chalicelib.db.tables import Batch

batches_api = Blueprint(__name__)


class CreateBatch(msgspec.Struct, forbid_unknown_fields=True):
    image_ids: Annotated[list[Annotated[int, Meta(ge=1)]], Meta(min_length=1, max_length=100_000)] | None = None
    prefix: Annotated[str, Meta(min_length=1, max_length=1000)] | None = None
    dataset_id: Annotated[int, Meta(ge=1)] | None = None
    operation: Annotated[str, Meta(max_length=100)] | None = None
    model: Annotated[str, Meta(max_length=100)] | None = None
    params: dict[str, Any] = {}


def batch_json(batch: Batch, counts: dict[str, int]) -> dict:
    total = sum(counts.values())
    finished = counts["succeeded"] + counts["failed"] + counts["cancelled"]
    return {
        "id": batch.id,
        "operation": batch.operation,
        "params": batch.params,
        "source": batch.source,
        "status": batch.status,
        "total": total,
        **counts,
        "progress": {"percent": round(100 * finished / total) if total else 100, "finished": finished},
        "export_key": batch.export_key,
        "error": batch.error,
        "created_at": batch.created_at,
        "started_at": batch.started_at,
        "finished_at": batch.finished_at,
        "duration_ms": duration_ms(batch.started_at, batch.finished_at),
    }


@route(
    batches_api,
    "/api/batches",
    methods=["POST"],
    body=CreateBatch,
    tag="batches",
    summary="Run one operation or analyzer over many images on Dask; resubmitting the same request "
    "returns the same batch",
    responses={202: "batch queued", 200: "the same request was submitted before", 404: "no such images"},
    response={200: responses.Batch, 202: responses.Batch},
)
def create_batch(body: CreateBatch):
    principal = current_principal(batches_api.current_request)
    state, new = batch_service.create(principal, msgspec.to_builtins(body))
    location = f"/api/batches/{state.batch.id}"
    if not new:
        return Response(
            body=to_json(batch_json(state.batch, state.counts)),
            status_code=200,
            headers={"Content-Type": "application/json", "Location": location},
        )
    return created(batch_json(state.batch, state.counts), location, status=202)


@route(
    batches_api,
    "/api/batches",
    methods=["GET"],
    query=PageQuery,
    tag="batches",
    summary="Your batches",
    response=responses.BatchPage,
)
def list_batches(query: PageQuery):
    rows = batch_service.page(
        current_principal(batches_api.current_request), limit=query.limit + 1, before_id=cursor_id(query.cursor)
    )
    return paginated(rows, query.limit, lambda state: batch_json(state.batch, state.counts))


@route(
    batches_api,
    "/api/batches/{batch_id}",
    methods=["GET"],
    tag="batches",
    summary="A batch: total, succeeded, failed, progress",
    responses={404: "no such batch"},
    response=responses.Batch,
)
def get_batch(batch_id: str):
    number = parse_id(batch_id, "batch")
    state = batch_service.get(current_principal(batches_api.current_request), number)
    return batch_json(state.batch, state.counts)


@route(
    batches_api,
    "/api/batches/{batch_id}/cancel",
    methods=["POST"],
    tag="batches",
    summary="Cancel a batch: dispatch stops and its tasks not yet started end cancelled (running ones finish)",
    responses={404: "no such batch", 409: "already finished"},
    response=responses.Batch,
)
def cancel_batch(batch_id: str):
    number = parse_id(batch_id, "batch")
    state = batch_service.cancel(current_principal(batches_api.current_request), number)
    return batch_json(state.batch, state.counts)


@route(
    batches_api,
    "/api/batches/{batch_id}/resume",
    methods=["POST"],
    tag="batches",
    summary="Submit an unfinished batch again (after a scheduler restart): only its unfinished tasks run",
    responses={404: "no such batch", 409: "already finished"},
    response={202: responses.Batch},
)
def resume_batch(batch_id: str):
    number = parse_id(batch_id, "batch")
    state = batch_service.resume(current_principal(batches_api.current_request), number)
    return created(batch_json(state.batch, state.counts), f"/api/batches/{number}", status=202)


@route(
    batches_api,
    "/api/batches/{batch_id}/export",
    methods=["GET"],
    tag="batches",
    summary="Write the batch's results as Parquet under exports/ and return a download URL",
    responses={404: "no such batch", 409: "batch not finished", 202: "export still being written"},
    response={200: responses.BatchExport, 202: responses.ExportWriting},
)
def export_batch(batch_id: str):
    number = parse_id(batch_id, "batch")
    export = batch_service.export(current_principal(batches_api.current_request), number)
    if export is None:
        return Response(
            body={"status": "writing"},
            status_code=202,
            headers={"Content-Type": "application/json", "Location": f"/api/batches/{number}/export"},
        )
    return export
