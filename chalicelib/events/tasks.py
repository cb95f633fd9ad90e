"""The `tasks` and `ml-tasks` queues' Lambda handler: one task id per message → `execute`."""

from __future__ import annotations

import json
import logging
import time

from chalicelib import metrics
from chalicelib.events.records import handle_records
from chalicelib.logs import current_context, log_context
from chalicelib.services.task_runs import execute

log = logging.getLogger("pixelake.worker")


def task_id_of(body: str) -> int:
    return int(json.loads(body)["task_id"])


def execute_logged(task_id: int) -> None:
    with log_context(task_id=task_id):
        started = time.perf_counter()
        try:
            status = execute(task_id)
        except Exception:
            _task_metric("retried", started)
            raise
        _task_metric(status, started)
        log.info("task %s: %s", task_id, status)


def _task_metric(outcome: str, started: float) -> None:
    # execute() binds the task's operation (or model kind) into the log context once it has read the task.
    operation = str(current_context().get("operation") or "unknown")
    metrics.task_finished(operation, outcome, (time.perf_counter() - started) * 1000)


def run_tasks(event) -> dict:
    """Chalice SQS handler body: one task id per message; returns the partial-batch response."""
    return handle_records(event, task_id_of, execute_logged, expects='a {"task_id"} message')
