"""Processing tasks: POST /api/process, the task lifecycle, the operations catalogue, statistics."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from chalice import Blueprint, Response
from msgspec import Meta

from chalicelib import queues, storage
from chalicelib.api.routing import PageQuery, created, cursor_id, paginated, parse_id, route, to_json
from chalicelib.config import get_settings
from chalicelib.db.session import session_scope
from chalicelib.db.vocabulary import TASK_FINISHED
from chalicelib.errors import ApiError, InvalidRequest, found
from chalicelib.imaging.analyzers import ANALYZERS
from chalicelib.imaging.operations import OPERATIONS
from chalicelib.registry import ML, Entry
from chalicelib.services.identity import current_principal

if TYPE_CHECKING:
    from chalicelib.db.tables import ProcessingTask

tasks_api = Blueprint(__name__)
WAIT_POLL_S = 0.2


class ProcessRequest(msgspec.Struct, forbid_unknown_fields=True):
    image_id: Annotated[int, Meta(ge=1)]
    operation: Annotated[str, Meta(max_length=100)]
    params: dict[str, Any] = {}


class AnalyzeRequest(msgspec.Struct, forbid_unknown_fields=True):
    image_id: Annotated[int, Meta(ge=1)]
    model: Annotated[str, Meta(max_length=100)]
    params: dict[str, Any] = {}


# The original design's ML operations, reachable through /api/process too.
ML_OPERATIONS = {"segment": "segment", "detect": "faces"}


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


def no_model(name: str | None, *, task: str = "classify", versions: list | None = None) -> ApiError:
    """The 404 for a model that cannot run, saying how to get one."""
    register = (
        "Register your own with POST /api/models (an ONNX file or URL), or train one with POST /api/training-jobs."
    )
    if versions:
        listed = ", ".join(f"{m.version} ({m.status})" for m in versions)
        return ApiError(
            404,
            "model_not_found",
            f"model {name!r} has no active version (versions: {listed}); activate one with "
            f"POST /api/models/{name}/versions/<version>/activate, or register a new version "
            "with POST /api/models.",
        )
    if name is None:
        return ApiError(
            404, "model_not_found", f"you have no active {task} model and none was named in params.model. {register}"
        )
    return ApiError(
        404, "model_not_found", f"no model named {name!r}. Built-in analyzers: {ANALYZERS.names()}. {register}"
    )


def resolve_operation(name: str) -> tuple[str, Entry]:
    """The task kind and registry entry of an image operation or built-in ML operation; raises InvalidRequest."""
    if name in ML_OPERATIONS:
        return "analysis", ANALYZERS.get(ML_OPERATIONS[name])
    if name in OPERATIONS:
        return "operation", OPERATIONS.get(name)
    allowed = sorted([*OPERATIONS.names(), *ML_OPERATIONS, "classify"])
    raise InvalidRequest(f"unknown operation {name!r}; allowed: {allowed}", code="unknown_operation", allowed=allowed)


def queue_for(entry: Entry) -> str:
    settings = get_settings()
    return settings.ml_tasks_queue if entry.runtime == ML else settings.tasks_queue


def submit_task(
    request,
    *,
    image_id: int,
    kind: str,
    entry: Entry,
    params: dict,
    model_id: int | None = None,
    operation: str | None = None,
    queue: str | None = None,
) -> int:
    """Create a task for the caller's image and enqueue it; returns the task id.

    `operation` and `queue` default to the entry's name and runtime (a model task names its model).
    """
    from chalicelib.db import images as image_rows
    from chalicelib.db import tasks as task_rows

    principal = current_principal(request)
    with session_scope() as session:
        image = found(image_rows.get_for_owner(session, image_id, principal.owner_filter), "image", image_id)
        if image.status != "ready":
            raise ApiError(
                409,
                "image_not_ready",
                f"image {image_id} is {image.status}"
                + (f": {image.error}" if image.error else "; try again when it is ready"),
            )
        task = task_rows.create(
            session,
            owner_id=image.owner_id,
            image_id=image_id,
            kind=kind,
            operation=operation or entry.name,
            params=params,
            model_id=model_id,
        )
        task_id = task.id
    queues.send(queue or queue_for(entry), {"task_id": task_id})
    return task_id


# --- registered models (registered through chalicelib/api/models.py) ---------------------


@dataclass(frozen=True)
class ChosenModel:
    id: int
    name: str
    version: int
    framework: str
    task: str


def choose_model(request, name: str | None, *, task: str | None = None) -> ChosenModel:
    """The caller's active version of `name`, or without a name their newest active `task` model;
    a 404 with guidance when there is none, a 400 when the named model does another task."""
    from chalicelib.db import ml_models as model_rows

    if name is not None and not isinstance(name, str):
        raise InvalidRequest("'model' must be the name of a registered model")
    user_id = current_principal(request).user_id
    with session_scope() as session:
        model = (
            model_rows.resolve(session, user_id, name)
            if name is not None
            else model_rows.newest_active(session, user_id, task)
        )
        if model is None:
            raise no_model(
                name,
                task=task or "classify",
                versions=model_rows.list_versions(session, user_id, name) if name is not None else None,
            )
        if task is not None and model.task != task:
            raise ApiError(
                400, "wrong_model_task", f"model {name!r} is a {model.task} model; {task} needs a {task} model"
            )
        return ChosenModel(model.id, model.name, model.version, model.framework, model.task)


def submit_model_run(request, *, image_id: int, model: ChosenModel, params: dict, wait_s: float) -> Response:
    """Queue a run of a registered model: scikit-learn models on ml-tasks, ONNX models on tasks."""
    from chalicelib.ml.runtimes import model_task
    from chalicelib.services.model_runs import queue_for_model

    entry = model_task(model.task)
    task_id = submit_task(
        request,
        image_id=image_id,
        kind="model",
        entry=entry,
        params=entry.clean_params(params),
        model_id=model.id,
        operation=model.name,
        queue=queue_for_model(model.framework),
    )
    return accepted_or_finished(request, task_id, wait_s)


def wait_for_task(task_id: int, owner_filter: int | None, wait_s: float) -> dict:
    """The task, once finished or when `wait_s` has passed, whichever comes first."""
    from chalicelib.db import tasks as task_rows

    deadline = time.monotonic() + min(wait_s, get_settings().max_wait_s)
    while True:
        with session_scope() as session:
            task = task_rows.get_for_owner(session, task_id, owner_filter)
            body = task_json(task)
        if body["status"] in TASK_FINISHED or time.monotonic() >= deadline:
            return body
        time.sleep(WAIT_POLL_S)


def accepted_or_finished(request, task_id: int, wait_s: float) -> Response:
    """202 with the task; 200 with the finished task when the caller asked to wait and it finished in time."""
    body = wait_for_task(task_id, current_principal(request).owner_filter, wait_s)
    if wait_s > 0 and body["status"] in TASK_FINISHED:
        return Response(
            body=to_json(body),
            status_code=200,
            headers={"Content-Type": "application/json", "Location": f"/api/tasks/{task_id}"},
        )
    return created(body, f"/api/tasks/{task_id}", status=202)


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
)
def process(body: ProcessRequest, query: WaitQuery):
    request = tasks_api.current_request
    if body.operation == "classify" or (body.operation == "detect" and "model" in body.params):
        params = dict(body.params)
        model = choose_model(request, params.pop("model", None), task=body.operation)
        return submit_model_run(request, image_id=body.image_id, model=model, params=params, wait_s=query.wait)
    kind, entry = resolve_operation(body.operation)
    params = entry.clean_params(body.params)
    task_id = submit_task(tasks_api.current_request, image_id=body.image_id, kind=kind, entry=entry, params=params)
    return accepted_or_finished(tasks_api.current_request, task_id, query.wait)


@route(
    tasks_api,
    "/api/analyze",
    methods=["POST"],
    body=AnalyzeRequest,
    query=WaitQuery,
    tag="tasks",
    summary="Analyze an image with a built-in analyzer or a registered model; same lifecycle as /api/process",
    responses={202: "task queued", 200: "task finished within wait", 404: "no such image or model"},
)
def analyze(body: AnalyzeRequest, query: WaitQuery):
    if body.model not in ANALYZERS:  # built-in analyzers first, then the caller's registered models
        model = choose_model(tasks_api.current_request, body.model)
        return submit_model_run(
            tasks_api.current_request, image_id=body.image_id, model=model, params=body.params, wait_s=query.wait
        )
    entry = ANALYZERS.get(body.model)
    params = entry.clean_params(body.params)
    task_id = submit_task(
        tasks_api.current_request, image_id=body.image_id, kind="analysis", entry=entry, params=params
    )
    return accepted_or_finished(tasks_api.current_request, task_id, query.wait)


@route(
    tasks_api,
    "/api/tasks/{task_id}",
    methods=["GET"],
    query=WaitQuery,
    tag="tasks",
    summary="One task with its result; `wait` (≤ 25 s) waits for it to finish",
    responses={404: "no such task"},
)
def get_task(task_id: str, query: WaitQuery):
    from chalicelib.db import tasks as task_rows

    task_id = parse_id(task_id, "task")
    principal = current_principal(tasks_api.current_request)
    with session_scope() as session:
        found(task_rows.get_for_owner(session, task_id, principal.owner_filter), "task", task_id)
    return wait_for_task(task_id, principal.owner_filter, query.wait)


@route(
    tasks_api,
    "/api/images/{image_id}/tasks",
    methods=["GET"],
    query=PageQuery,
    tag="tasks",
    summary="The tasks run on an image, newest first",
    responses={404: "no such image"},
)
def list_image_tasks(image_id: str, query: PageQuery):
    from chalicelib.db import images as image_rows
    from chalicelib.db import tasks as task_rows

    image_id = parse_id(image_id, "image")
    principal = current_principal(tasks_api.current_request)
    with session_scope() as session:
        found(image_rows.get_for_owner(session, image_id, principal.owner_filter), "image", image_id)
        rows = task_rows.list_for_image(session, image_id, limit=query.limit + 1, before_id=cursor_id(query.cursor))
        return paginated(rows, query.limit, task_json)


def model_operation(name: str, model_doc: str) -> dict:
    """A catalogue entry for an operation that runs a registered model."""
    from chalicelib.ml.runtimes import MODEL_TASKS

    described = MODEL_TASKS.get(name).describe()
    described["params"]["properties"]["model"] = {"type": "string", "description": model_doc}
    return described


@route(
    tasks_api,
    "/api/operations",
    methods=["GET"],
    tag="tasks",
    summary="The operations with their declared parameters (JSON Schema)",
)
def list_operations():
    ml = [{**ANALYZERS.get(analyzer).describe(), "name": name} for name, analyzer in sorted(ML_OPERATIONS.items())]
    ml.append(model_operation("classify", "the registered classify model to run (default: your newest active one)"))
    for operation in ml:  # detect runs a registered detector when params.model names one, else finds faces
        if operation["name"] == "detect":
            operation["params"]["properties"]["model"] = {"type": "string", "description": "a registered detect model"}
    return {"operations": OPERATIONS.describe() + ml, "analyzers": ANALYZERS.describe()}


@route(
    tasks_api,
    "/api/stats",
    methods=["GET"],
    tag="tasks",
    summary="Processing statistics for your data (all data for admins): images by status, tasks by "
    "operation and status with p50/p95 durations, volume per day",
)
def stats():
    from chalicelib.db import tasks as task_rows

    principal = current_principal(tasks_api.current_request)
    with session_scope() as session:
        return task_rows.statistics(session, principal.owner_filter, max_age_s=get_settings().stats_max_age_s)
