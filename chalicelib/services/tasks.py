"""Single tasks for the API: resolve the request, create the task, send it to its queue, wait.

What runs and where is decided by chalicelib/services/resolver.py; the queue workers run the
task (chalicelib/services/task_runs.py).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from chalicelib import queues
from chalicelib.config import get_settings
from chalicelib.db.session import session_scope
from chalicelib.db.vocabulary import TASK_FINISHED
from chalicelib.errors import ApiError, found
from chalicelib.services import resolver

if TYPE_CHECKING:
    from chalicelib.db.tables import ProcessingTask
    from chalicelib.services.identity import Principal

WAIT_POLL_S = 0.2


def submit(principal: Principal, image_id: int, plan: resolver.TaskPlan) -> int:
    """Create the plan's task on the caller's image and send it to the plan's queue; the task id.

    404 when the image is not the caller's, 409 while it is not ready.
    """
    from chalicelib.db import images as image_rows
    from chalicelib.db import tasks as task_rows

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
            kind=plan.kind,
            operation=plan.operation,
            params=plan.params,
            model_id=plan.model_id,
        )
        task_id = task.id
    queues.send(plan.queue, {"task_id": task_id})
    return task_id


def run(
    principal: Principal,
    image_id: int,
    *,
    operation: str | None = None,
    model: str | None = None,
    params: dict[str, Any],
    wait_s: float,
) -> ProcessingTask:
    """POST /api/process (an operation) and /api/analyze (an analyzer or model): the task,
    finished if it finished within `wait_s`."""
    plan = resolver.resolve(principal.user_id, operation=operation, model=model, params=params)
    return wait(submit(principal, image_id, plan), principal.owner_filter, wait_s)


def wait(task_id: int, owner_filter: int | None, wait_s: float) -> ProcessingTask:
    """The task, once finished or when `wait_s` has passed, whichever comes first."""
    from chalicelib.db import tasks as task_rows

    deadline = time.monotonic() + min(wait_s, get_settings().max_wait_s)
    while True:
        with session_scope() as session:
            task = task_rows.get_for_owner(session, task_id, owner_filter)
        assert task is not None  # tasks are never deleted but with their image, and the caller owns it
        if task.status in TASK_FINISHED or time.monotonic() >= deadline:
            return task
        time.sleep(WAIT_POLL_S)


def get(principal: Principal, task_id: int, wait_s: float) -> ProcessingTask:
    """One of the caller's tasks (404 otherwise), waiting up to `wait_s` for it to finish."""
    from chalicelib.db import tasks as task_rows

    with session_scope() as session:
        found(task_rows.get_for_owner(session, task_id, principal.owner_filter), "task", task_id)
    return wait(task_id, principal.owner_filter, wait_s)


def list_for_image(principal: Principal, image_id: int, *, limit: int, before_id: int | None) -> list[ProcessingTask]:
    """The tasks run on one of the caller's images (404 otherwise), newest first."""
    from chalicelib.db import images as image_rows
    from chalicelib.db import tasks as task_rows

    with session_scope() as session:
        found(image_rows.get_for_owner(session, image_id, principal.owner_filter), "image", image_id)
        return task_rows.list_for_image(session, image_id, limit=limit, before_id=before_id)


def statistics(principal: Principal) -> dict:
    from chalicelib.db import tasks as task_rows

    with session_scope() as session:
        return task_rows.statistics(session, principal.owner_filter, max_age_s=get_settings().stats_max_age_s)
