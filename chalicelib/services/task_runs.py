"""Running one processing task, idempotently: the `tasks` and `ml-tasks` queue handlers
(chalicelib/events/tasks.py) and the Dask batch jobs call `execute`.

Both queues run this code: `tasks` in the imaging worker (operations, analyzers, ONNX models),
`ml-tasks` in the ml worker (scikit-learn models; no OpenCV there).

A task whose image cannot be processed (bad parameters for this image, a decoder error)
ends `failed` with the reason and its message is consumed; a transient fault (database or
S3 unreachable) reports the record as failed so SQS retries it — until the task's last
attempt (PIXELAKE_TASK_MAX_ATTEMPTS, the queue's maxReceiveCount), which records the task
failed with the fault rather than leave it `running` while SQS dead-letters the message. When
even that write fails (the database is down), reading the task later reports it failed
(chalicelib.db.tasks.settle_stalled).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chalicelib import storage
from chalicelib.config import get_settings
from chalicelib.db import direct, transitions
from chalicelib.db.direct import ResultRow
from chalicelib.logs import bind
from chalicelib.services import resolver

if TYPE_CHECKING:  # imported by execute for a model task: an operation's cold start skips it
    from chalicelib.services.model_runs import ModelArtifact

log = logging.getLogger("pixelake.worker")


@dataclass(frozen=True)
class TaskInput:
    task_id: int
    kind: str
    operation: str
    params: dict
    image_key: str
    bucket: str
    image_format: str | None
    model: ModelArtifact | None = None  # kind "model": the registered model version to run
    attempt: int = 1


def perform(task: TaskInput, data: bytes) -> list[ResultRow]:
    """Run the task's image function on the image bytes; pure but for what it returns."""
    plan = resolver.stored(
        task.kind,
        task.operation,
        task.params,
        model_task=task.model.task if task.model is not None else None,
        framework=task.model.framework if task.model is not None else "",
    )
    if plan.kind == resolver.OPERATION:
        from chalicelib.imaging.operation_runner import run_operation

        settings = get_settings()
        output = run_operation(
            data,
            plan.operation,
            plan.params,
            max_pixels=settings.max_pixels,
            source_format=task.image_format,
            max_frames=settings.max_frames,
        )
        key = storage.result_key(task.task_id, output.format)
        storage.put(key, output.data, output.content_type, bucket=task.bucket)
        return [
            ResultRow(
                kind="image",
                output_key=key,
                output_format=output.format,
                width=output.width,
                height=output.height,
                size_bytes=output.size_bytes,
                data=output.details(),
            )
        ]
    if plan.kind == resolver.ANALYSIS:
        from chalicelib.imaging.analyzers import AnalysisInput, analyze

        analysis = analyze(
            plan.operation, AnalysisInput.from_bytes(data, max_pixels=get_settings().max_pixels), plan.params
        )
        return [analysis_result(analysis.data, mask=analysis.image, task=task)]
    from chalicelib.services import model_runs as model_runner

    assert task.model is not None  # resolver.stored refused a model task without its model
    return [model_runner.run(task.model, data, plan.params, task_id=task.task_id, bucket=task.bucket)]


def analysis_result(data: dict, *, mask=None, task: TaskInput | None = None) -> ResultRow:
    """The analysis's result row; a mask image is stored under results/ beside it."""
    result = direct.analysis_result(data)
    if mask is not None and task is not None:
        from chalicelib.imaging import imageio

        png = imageio.encode(imageio.from_array(mask), "PNG")
        result.output_key = storage.result_mask_key(task.task_id)
        storage.put(result.output_key, png, "image/png", bucket=task.bucket)
        result.output_format, result.size_bytes = "png", len(png)
        result.height, result.width = mask.shape[:2]
    return result


def failure_reason(exc: Exception) -> str:
    from chalicelib.errors import InvalidRequest
    from chalicelib.imaging.imageio import ImageRejected
    from chalicelib.ml.artifacts import ArtifactMismatch

    if isinstance(exc, ArtifactMismatch):
        return f"the model's stored artifact is damaged ({exc}); register the model again"
    if isinstance(exc, (ImageRejected, InvalidRequest)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"[:500]


def _is_transient(exc: Exception) -> bool:
    from botocore.exceptions import BotoCoreError, ClientError
    from pg8000.exceptions import Error as DatabaseFault

    return isinstance(exc, (DatabaseFault, BotoCoreError, ClientError, ConnectionError, TimeoutError))


def model_artifact(row: dict | None) -> ModelArtifact | None:
    """A model task's registered version (the model runner's module loads for model tasks only)."""
    if row is None:
        return None
    from chalicelib.services.model_runs import ModelArtifact

    return ModelArtifact(**row)


def execute(task_id: int) -> str:
    """Run one task; returns its final status ('skipped' for a finished or unknown task)."""
    with direct.transaction() as db:
        task = transitions.task_running(db, task_id)
        if task is None:
            return "skipped"
        image = direct.task_image(db, task["image_id"])
        if image["status"] != "ready":  # a batch may include images that failed ingest
            transitions.task_failed(
                db,
                task_id,
                f"image {image['id']} is {image['status']}" + (f": {image['error']}" if image["error"] else ""),
            )
            return "failed"
        model = direct.task_model(db, task["model_id"])
        work = TaskInput(
            task_id,
            task["kind"],
            task["operation"],
            dict(task["params"]),
            image["key"],
            image["bucket"],
            image["format"],
            model_artifact(model),
            task["attempts"],
        )
    bind(operation=work.operation or work.kind)  # the log lines' and the TaskDuration metric's operation
    try:
        results = perform(work, storage.get(work.image_key, bucket=work.bucket))
    except Exception as exc:
        reason = failure_reason(exc)
        if _is_transient(exc):
            if work.attempt < get_settings().task_max_attempts:
                raise
            reason = f"gave up after {work.attempt} attempts: {reason}"
        log.info("task %s failed: %s", task_id, reason)
        with direct.transaction() as db:
            transitions.task_failed(db, task_id, reason)
        return "failed"
    with direct.transaction() as db:
        direct.succeed_task(db, task_id, results)
    return "succeeded"
