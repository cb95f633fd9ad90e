"""From a request to what runs: the one place that decides it.

A request names an operation (POST /api/process, a batch's `operation`) or an analyzer or model
(POST /api/analyze, a batch's `model`), with parameters. `resolve` turns it into a `TaskPlan`:
the task kind, the registry entry that runs it (an image operation, an analyzer, or a model
task with the registered model version), the validated parameters, and the runtime, which
names the SQS queue a single task goes to (`tasks` for imaging and ONNX models, `ml-tasks` for
scikit-learn models). A batch's tasks all run on the Dask cluster instead, through the same
`execute` as the queue workers (chalicelib/services/task_runs.py), which read a stored task back
through `stored`.

Imports no SQLAlchemy, numpy or OpenCV at module level: the api function validates requests
with it and the workers read their tasks through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.config import get_settings
from chalicelib.errors import ApiError, InvalidRequest
from chalicelib.registry import IMAGING, INFERENCE, ML, Entry

# Task kinds, as stored in processing_tasks.kind.
OPERATION = "operation"
ANALYSIS = "analysis"
MODEL = "model"

# The original design's ML operations, reachable through /api/process too: operation → analyzer.
ML_OPERATIONS = {"segment": "segment", "detect": "faces"}
# Operations that run a registered model: always (classify), or when params.model names one (detect).
MODEL_OPERATIONS = ("classify", "detect")


@dataclass(frozen=True)
class ChosenModel:
    """The registered model version a task runs."""

    id: int
    name: str
    version: int
    framework: str
    task: str

    @property
    def runtime(self) -> str:
        return runtime_of(self.framework)


@dataclass(frozen=True)
class TaskPlan:
    kind: str
    operation: str  # processing_tasks.operation: the entry's name, or the model's
    entry: Entry
    params: dict
    runtime: str
    model: ChosenModel | None = None

    @property
    def model_id(self) -> int | None:
        return self.model.id if self.model is not None else None

    @property
    def queue(self) -> str:
        """The SQS queue a single task of this plan is sent to."""
        return queue_for(self.runtime)


def runtime_of(framework: str) -> str:
    """Where a registered model runs: scikit-learn in the ml layer (no OpenCV there), `opencv`
    models on cv2.dnn in the imaging layer, ONNX models on onnxruntime in the inference layer."""
    return {"sklearn": ML, "opencv": IMAGING}.get(framework, INFERENCE)


def queue_for(runtime: str) -> str:
    """The queue whose function has the runtime's layer."""
    settings = get_settings()
    return {ML: settings.ml_tasks_queue, INFERENCE: settings.inference_queue}.get(runtime, settings.tasks_queue)


def _analyzers():
    from chalicelib.imaging.analyzers import ANALYZERS

    return ANALYZERS


def _operations():
    from chalicelib.imaging.operations import OPERATIONS

    return OPERATIONS


def _model_task(task: str):
    from chalicelib.ml.runtimes import model_task

    return model_task(task)


def resolve(user_id: int, *, operation: str | None = None, model: str | None = None, params: Any = None) -> TaskPlan:
    """The plan for a request naming exactly one of an operation or an analyzer/model.

    Raises InvalidRequest (400) for an unknown operation or bad parameters, ApiError 404 when
    the named model does not exist or has no active version, 400 when it does another task.
    """
    if (operation is None) == (model is None):
        raise ApiError(400, "invalid_request", "give exactly one of 'operation' or 'model'")
    params = {} if params is None else params
    if operation is not None:
        return _operation_plan(user_id, operation, params)
    assert model is not None
    if model in _analyzers():  # built-in analyzers first, then the caller's registered models
        return _entry_plan(ANALYSIS, _analyzers().get(model), params)
    return _model_plan(choose_model(user_id, model), params)


def _operation_plan(user_id: int, name: str, params: Any) -> TaskPlan:
    if name == "classify" or (name == "detect" and isinstance(params, dict) and "model" in params):
        params = dict(params)
        return _model_plan(choose_model(user_id, params.pop("model", None), task=name), params)
    if name in ML_OPERATIONS:
        return _entry_plan(ANALYSIS, _analyzers().get(ML_OPERATIONS[name]), params)
    if name in _operations():
        return _entry_plan(OPERATION, _operations().get(name), params)
    allowed = sorted([*_operations().names(), *ML_OPERATIONS, "classify"])
    raise InvalidRequest(f"unknown operation {name!r}; allowed: {allowed}", code="unknown_operation", allowed=allowed)


def _entry_plan(kind: str, entry: Entry, params: Any) -> TaskPlan:
    return TaskPlan(kind, entry.name, entry, entry.clean_params(params), entry.runtime)


def _model_plan(model: ChosenModel, params: Any) -> TaskPlan:
    entry = _model_task(model.task)
    return TaskPlan(MODEL, model.name, entry, entry.clean_params(params), model.runtime, model)


def stored(kind: str, operation: str, params: dict, *, model_task: str | None = None, framework: str = "") -> TaskPlan:
    """The plan of a task already created (its parameters were validated then), for a worker.

    Raises InvalidRequest for a kind or name no registry knows (a task stored before a release
    that removed it): the task then fails with that reason rather than crash the worker.
    """
    if kind == OPERATION:
        entry = _operations().get(operation)
    elif kind == ANALYSIS:
        entry = _analyzers().get(operation)
    elif kind == MODEL:
        if model_task is None:
            raise InvalidRequest("the model this task was to run has been deleted", code="model_not_found")
        entry = _model_task(model_task)
        return TaskPlan(MODEL, operation, entry, params, runtime_of(framework))
    else:
        raise InvalidRequest(f"unknown task kind {kind!r}")
    return TaskPlan(kind, operation, entry, params, entry.runtime)


# --- registered models ---------------------------------------------------------------------


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
        404, "model_not_found", f"no model named {name!r}. Built-in analyzers: {_analyzers().names()}. {register}"
    )


def choose_model(user_id: int, name: Any, *, task: str | None = None) -> ChosenModel:
    """The user's active version of `name`, or without a name their newest active `task` model;
    a 404 with guidance when there is none, a 400 when the named model does another task."""
    from chalicelib.db import ml_models as model_rows
    from chalicelib.db.session import session_scope

    if name is not None and not isinstance(name, str):
        raise InvalidRequest("'model' must be the name of a registered model")
    with session_scope() as session:
        model = (
            model_rows.resolve(session, user_id, name)
            if name is not None
            else model_rows.newest_active(session, user_id, task or "classify")
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


# --- the catalogue -------------------------------------------------------------------------


def _model_operation(name: str, model_doc: str) -> dict:
    """A catalogue entry for an operation that runs a registered model."""
    described = _model_task(name).describe()
    described["params"]["properties"]["model"] = {"type": "string", "description": model_doc}
    return described


def catalogue() -> dict:
    """What /api/process and /api/analyze accept, with the declared parameters (JSON Schema)."""
    analyzers = _analyzers()
    ml = [{**analyzers.get(analyzer).describe(), "name": name} for name, analyzer in sorted(ML_OPERATIONS.items())]
    ml.append(_model_operation("classify", "the registered classify model to run (default: your newest active one)"))
    for operation in ml:  # detect runs a registered detector when params.model names one, else finds faces
        if operation["name"] == "detect":
            operation["params"]["properties"]["model"] = {"type": "string", "description": "a registered detect model"}
    return {"operations": _operations().describe() + ml, "analyzers": analyzers.describe()}
