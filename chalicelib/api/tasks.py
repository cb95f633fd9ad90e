"""Processing tasks: POST /api/process and /api/analyze, a task and an image's tasks, the
operations catalogue, statistics. The logic is in chalicelib/services/tasks.py and resolver.py."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from chalice import Blueprint, Response
from msgspec import Meta

from chalicelib import storage
from chalicelib.api import responses
from chalicelib.api.routing import PageQuery, created, cursor_id, paginated, parse_id, route, to_json
from chalicelib.db.vocabulary import TASK_FINISHED
from chalicelib.services import resolver
from chalicelib.services import tasks as task_service
from chalicelib.services.identity import current_principal

if TYPE_CHECKING:
    from chalicelib.db.tables import ProcessingTask

tasks_api = Blueprint(__name__)


class ProcessRequest(msgspec.Struct, forbid_unknown_fields=True):
    image_id: Annotated[int, Meta(ge=1)]
    operation: Annotated[str, Meta(max_length=100)]
    params: dict[str, Any] = {}


class AnalyzeRequest(msgspec.Struct, forbid_unknown_fields=True):
    image_id: Annotated[int, Meta(ge=1)]
    model: Annotated[str, Meta(max_length=100)]
    params: dict[str, Any] = {}


class WaitQuery(msgspec.Struct, forbid_unknown_fields=True):
    wait: Annotated[float, Meta(ge=0)] = 0


def result_json(task: ProcessingTask) -> dict | None:
    if task.status != "succeeded" or not task.results:
        return None
    result = task.results[0]
    body: dict[str, Any] = dict(result.data)
    if result.confidence is not None:
        body["confidence"] = result.confidence
    if result.output_key:
        body.update(
            width=result.width,
            height=result.height,
            format=result.output_format,
            size_bytes=result.size_bytes,
            url=storage.presign_get(result.output_key),
        )
    return body


def task_json(task: ProcessingTask) -> dict:
    return {
        "id": task.id,
        "image_id": task.image_id,
        "kind": task.kind,
        "operation": task.operation,
        "params": task.params,
        "status": task.status,
        "error": task.error,
        "result": result_json(task),
        "attempts": task.attempts,
        "queued_at": task.queued_at,
        "started_at": task.started_at,
        "finished_at": task.finished_at,
        "duration_ms": task.duration_ms,
        "model": {"name": task.model.name, "version": task.model.version} if task.model is not None else None,
    }


def accepted_or_finished(task: ProcessingTask, wait_s: float) -> Response:
    """202 with the task; 200 with the finished task when the caller asked to wait and it finished in time."""
    body = task_json(task)
    if wait_s > 0 and task.status in TASK_FINISHED:
        return Response(
            body=to_json(body),
            status_code=200,
            headers={"Content-Type": "application/json", "Location": f"/api/tasks/{task.id}"},
        )
    return created(body, f"/api/tasks/{task.id}", status=202)


@route(
    tasks_api,
    "/api/process",
    methods=["POST"],
    body=ProcessRequest,
    query=WaitQuery,
    tag="tasks",
    summary="Run an operation on an image: 202 with the task, or 200 with the result when `wait` suffices",
    responses={
        202: "task queued",
        200: "task finished within wait",
        404: "no such image",
        409: "image not ready",
        400: "unknown operation or bad parameters",
    },
    response={200: responses.Task, 202: responses.Task},
)
def process(body: ProcessRequest, query: WaitQuery):
    principal = current_principal(tasks_api.current_request)
    task = task_service.run(principal, body.image_id, operation=body.operation, params=body.params, wait_s=query.wait)
    return accepted_or_finished(task, query.wait)


@route(
    tasks_api,
    "/api/analyze",
    methods=["POST"],
    body=AnalyzeRequest,
    query=WaitQuery,
    tag="tasks",
    summary="Analyze an image with a built-in analyzer or a registered model; same lifecycle as /api/process",
    responses={202: "task queued", 200: "task finished within wait", 404: "no such image or model"},
    response={200: responses.Task, 202: responses.Task},
)
def analyze(body: AnalyzeRequest, query: WaitQuery):
    principal = current_principal(tasks_api.current_request)
    task = task_service.run(principal, body.image_id, model=body.model, params=body.params, wait_s=query.wait)
    return accepted_or_finished(task, query.wait)


@route(
    tasks_api,
    "/api/tasks/{task_id}",
    methods=["GET"],
    query=WaitQuery,
    tag="tasks",
    summary="One task with its result; `wait` (≤ 25 s) waits for it to finish",
    responses={404: "no such task"},
    response=responses.Task,
)
def get_task(task_id: str, query: WaitQuery):
    number = parse_id(task_id, "task")
    return task_json(task_service.get(current_principal(tasks_api.current_request), number, query.wait))


@route(
    tasks_api,
    "/api/images/{image_id}/tasks",
    methods=["GET"],
    query=PageQuery,
    tag="tasks",
    summary="The tasks run on an image, newest first",
    responses={404: "no such image"},
    response=responses.TaskPage,
)
def list_image_tasks(image_id: str, query: PageQuery):
    number = parse_id(image_id, "image")
    rows = task_service.list_for_image(
        current_principal(tasks_api.current_request),
        number,
        limit=query.limit + 1,
        before_id=cursor_id(query.cursor),
    )
    return paginated(rows, query.limit, task_json)


@route(
    tasks_api,
    "/api/operations",
    methods=["GET"],
    tag="tasks",
    summary="The operations with their declared parameters (JSON Schema)",
    response=responses.OperationCatalogue,
)
def list_operations():
    return resolver.catalogue()


@route(
    tasks_api,
    "/api/stats",
    methods=["GET"],
    tag="tasks",
    summary="Processing statistics for your data (all data for admins): images by status, tasks by "
    "operation and status with p50/p95 durations, volume per day",
    response=responses.Statistics,
)
def stats():
    return task_service.statistics(current_principal(tasks_api.current_request))
