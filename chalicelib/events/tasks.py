"""The `tasks` and `ml-tasks` queues' Lambda handler: one task id per message → `execute`."""

from __future__ import annotations

import json
import logging

from chalicelib.events.records import handle_records
from chalicelib.logs import log_context
from chalicelib.services.task_runs import execute

log = logging.getLogger("pixelake.worker")


def task_id_of(body: str) -> int:
    return int(json.loads(body)["task_id"])


def execute_logged(task_id: int) -> None:
    with log_context(task_id=task_id):
        log.info("task %s: %s", task_id, execute(task_id))


def run_tasks(event) -> dict:
    """Chalice SQS handler body: one task id per message; returns the partial-batch response."""
    return handle_records(event, task_id_of, execute_logged, expects='a {"task_id"} message')
