"""Every way a task starts, on the real stack: POST /api/process and /api/analyze (through the
tasks queue and its Lambda handler), a batch from each of its sources (image ids, a key prefix,
a dataset) run on a two-process Dask cluster, the tasks queue's handler given an event directly,
and the Dask batch job submitted directly. Each goes through the one resolver and the one set of
status transitions (chalicelib/services/resolver.py, chalicelib/db/transitions.py)."""

from __future__ import annotations

import json
import uuid

import pytest
from polling import wait_for
from sample_images import jpeg_bytes

JSON = {"Content-Type": "application/json"}


def post(client, path, body):
    return client.http.post(path, body=json.dumps(body), headers=JSON)


def finished_batch(client, batch_id: int) -> dict:
    return wait_for(
        lambda: (b := client.http.get(f"/api/batches/{batch_id}").json_body)["status"] == "succeeded" and b,
        timeout=240,
        interval=0.25,
        what=f"batch {batch_id}",
    )


def task_rows(batch_id: int) -> list[tuple[str, str, int | None]]:
    """(status, operation, result count) of each task of the batch, by task id."""
    from sqlalchemy import func, select

    from chalicelib.db.session import session_scope
    from chalicelib.db.tables import ProcessingTask, Result

    with session_scope() as session:
        query = (
            select(ProcessingTask.status, ProcessingTask.operation, func.count(Result.id))
            .outerjoin(Result, Result.task_id == ProcessingTask.id)
            .where(ProcessingTask.batch_id == batch_id)
            .group_by(ProcessingTask.id)
            .order_by(ProcessingTask.id)
        )
        return [tuple(row) for row in session.execute(query)]


def owner_of(image_id: int) -> int:
    from chalicelib.db.session import session_scope
    from chalicelib.db.tables import Image

    with session_scope() as session:
        return session.get(Image, image_id).owner_id


# --- batches, one per source -----------------------------------------------------------------


def test_a_batch_from_image_ids(client, dask_cluster, ready_image):
    images = [ready_image(jpeg_bytes((60 + i, 40)))["id"] for i in range(3)]
    response = post(client, "/api/batches", {"image_ids": images, "operation": "flip"})
    assert response.status_code == 202, response.body
    assert response.json_body["source"] == {"image_ids": 3}
    batch = finished_batch(client, response.json_body["id"])
    assert (batch["total"], batch["succeeded"], batch["failed"]) == (3, 3, 0)
    assert task_rows(batch["id"]) == [("succeeded", "flip", 1)] * 3


def test_the_local_clusters_workers_run_with_pixelakes_dask_settings(dask_cluster):
    """chalicelib/dask_config: no fixed glibc trim threshold in the workers (Dask's default sets one)
    and no statistical profiler."""
    import os

    import dask.config
    from distributed import Client

    with Client(dask_cluster.scheduler_address, timeout=15) as client:
        trim = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
        threads = client.run(lambda: os.environ.get("OMP_NUM_THREADS"))
        profiling = client.run(lambda: dask.config.get("distributed.worker.profile.enabled"))
    assert list(trim.values()) == [None, None], trim
    assert list(threads.values()) == ["1", "1"], "the rest of Dask's worker environment stays"
    assert list(profiling.values()) == [False, False], "no 10 ms stack sampling in the workers"


def test_a_batch_from_a_prefix(client, dask_cluster, ready_image):
    images = [ready_image(jpeg_bytes((50, 30 + i))) for i in range(2)]
    prefix = f"uploads/{owner_of(images[0]['id'])}/"
    response = post(client, "/api/batches", {"prefix": prefix, "model": "properties"})
    assert response.status_code == 202, response.body
    assert response.json_body["source"] == {"prefix": prefix}
    batch = finished_batch(client, response.json_body["id"])
    assert (batch["total"], batch["succeeded"]) == (2, 2)
    assert task_rows(batch["id"]) == [("succeeded", "properties", 1)] * 2
    elsewhere = post(client, "/api/batches", {"prefix": "uploads/999999/", "operation": "flip"})
    assert elsewhere.status_code == 403, elsewhere.body


def test_a_batch_from_a_dataset(client, dask_cluster, ready_image):
    """Issue 13: this answered 500 (UnboundLocalError: `found` shadowed in the source lookup)."""
    images = [ready_image(jpeg_bytes((70, 50 + i)))["id"] for i in range(2)]
    dataset = post(
        client,
        "/api/datasets",
        {"name": f"d-{uuid.uuid4().hex[:6]}", "items": [{"image_id": i, "label": "a"} for i in images]},
    )
    assert dataset.status_code == 201, dataset.body
    dataset_id = dataset.json_body["id"]
    response = post(
        client, "/api/batches", {"dataset_id": dataset_id, "operation": "thumbnail", "params": {"size": 16}}
    )
    assert response.status_code == 202, response.body
    assert response.json_body["source"] == {"dataset_id": dataset_id}
    assert response.json_body["params"] == {"size": 16}
    batch = finished_batch(client, response.json_body["id"])
    assert (batch["total"], batch["succeeded"]) == (2, 2)
    missing = post(client, "/api/batches", {"dataset_id": dataset_id + 1000, "operation": "flip"})
    assert missing.status_code == 404 and missing.json_body["error"]["code"] == "not_found", missing.body


@pytest.mark.parametrize(
    "body, code",
    [
        ({"operation": "flip"}, "invalid_request"),  # no source
        ({"image_ids": [1], "prefix": "uploads/1/", "operation": "flip"}, "invalid_request"),  # two sources
        ({"image_ids": [1]}, "invalid_request"),  # neither operation nor model
        ({"image_ids": [1], "operation": "flip", "model": "properties"}, "invalid_request"),
        ({"image_ids": [1], "operation": "no-such-op"}, "unknown_operation"),
        ({"image_ids": [1], "operation": "resize", "params": {"widht": 3}}, "invalid_parameter"),
    ],
)
def test_a_bad_batch_request_is_400(client, body, code):
    response = post(client, "/api/batches", body)
    assert response.status_code == 400, response.body
    assert response.json_body["error"]["code"] == code, response.body


# --- single tasks through the API ------------------------------------------------------------


def test_process_runs_through_the_tasks_queue(client, ready_image):
    image = ready_image(jpeg_bytes((200, 100)))
    task = post(
        client, "/api/process?wait=20", {"image_id": image["id"], "operation": "resize", "params": {"width": 50}}
    )
    assert task.status_code == 200, task.body
    body = task.json_body
    assert (body["kind"], body["operation"], body["status"], body["attempts"]) == (
        "operation",
        "resize",
        "succeeded",
        1,
    )
    assert (body["result"]["width"], body["result"]["height"]) == (50, 25)
    assert body["duration_ms"] is not None and body["duration_ms"] >= 0


def test_process_aliases_and_analyze_resolve_to_the_same_analyzer(client, ready_image):
    image = ready_image(jpeg_bytes((120, 90)))
    via_process = post(client, "/api/process?wait=20", {"image_id": image["id"], "operation": "detect"}).json_body
    via_analyze = post(client, "/api/analyze?wait=20", {"image_id": image["id"], "model": "faces"}).json_body
    for task in (via_process, via_analyze):
        assert (task["kind"], task["operation"], task["status"]) == ("analysis", "faces", "succeeded"), task
    assert via_process["result"]["faces"] == via_analyze["result"]["faces"]


# --- the tasks queue's handler and the Dask batch job, called directly --------------------------


def sqs_event(body: str) -> dict:
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": "direct",
                "body": body,
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:tasks",
                "awsRegion": "us-east-1",
            }
        ]
    }


def planned_task(image_id: int, operation: str, params: dict) -> int:
    """A pending task as the API creates it: resolved, validated, not sent anywhere."""
    from chalicelib.db import tasks
    from chalicelib.db.session import session_scope
    from chalicelib.services import resolver

    owner = owner_of(image_id)
    plan = resolver.resolve(owner, operation=operation, params=params)
    with session_scope() as session:
        return tasks.create(
            session,
            owner_id=owner,
            image_id=image_id,
            kind=plan.kind,
            operation=plan.operation,
            params=plan.params,
            model_id=plan.model_id,
        ).id


def test_the_tasks_queue_handler_runs_a_task_once(client, chalice_app, ready_image):
    image = ready_image(jpeg_bytes((90, 60)))
    task_id = planned_task(image["id"], "grayscale", {})
    event = sqs_event(json.dumps({"task_id": task_id}))
    assert chalice_app.run_task(event, None) == {"batchItemFailures": []}
    task = client.http.get(f"/api/tasks/{task_id}").json_body
    assert (task["status"], task["attempts"], task["result"]["width"]) == ("succeeded", 1, 90)
    # A redelivered message finds the task finished and changes nothing.
    assert chalice_app.run_task(event, None) == {"batchItemFailures": []}
    assert client.http.get(f"/api/tasks/{task_id}").json_body["attempts"] == 1
    # A message that is not a task is dropped, not retried.
    assert chalice_app.run_task(sqs_event("not json"), None) == {"batchItemFailures": []}


def test_the_tasks_queue_handler_fails_a_task_whose_image_failed(client, chalice_app, ready_image):
    from chalicelib.db import tasks
    from chalicelib.db.session import session_scope

    image = ready_image(jpeg_bytes()[:2000])
    assert image["status"] == "failed"
    with session_scope() as session:
        task_id = tasks.create(
            session, owner_id=owner_of(image["id"]), image_id=image["id"], kind="operation", operation="flip", params={}
        ).id
    assert chalice_app.run_task(sqs_event(json.dumps({"task_id": task_id})), None) == {"batchItemFailures": []}
    task = client.http.get(f"/api/tasks/{task_id}").json_body
    assert task["status"] == "failed" and f"image {image['id']} is failed" in task["error"]
    assert task["finished_at"] is not None and task["duration_ms"] >= 0


def test_the_dask_batch_job_runs_every_task_and_skips_a_finished_batch(client, dask_cluster, ready_image):
    from chalicelib import compute
    from chalicelib.db import jobs as job_rows
    from chalicelib.db.session import session_scope
    from chalicelib.db.tables import Batch
    from chalicelib.services import resolver
    from chalicelib.services.dask_jobs import run_batch_job

    images = [ready_image(jpeg_bytes((40 + i, 40)))["id"] for i in range(3)]
    owner = owner_of(images[0])
    plan = resolver.resolve(owner, operation="rotate", params={"angle": 90})
    with session_scope() as session:
        batch = Batch(
            owner_id=owner,
            request_hash=uuid.uuid4().hex,
            operation=plan.operation,
            params=plan.params,
            source={"image_ids": 3},
            status="pending",
            total=3,
        )
        session.add(batch)
        session.flush()
        job_rows.add_batch_tasks(session, batch, job_rows.image_ids_in(images), kind=plan.kind, params=plan.params)
        batch_id = batch.id
    dask = compute.dask_client()
    assert dask.submit(run_batch_job, batch_id, pure=False).result(timeout=240) == "succeeded"
    assert task_rows(batch_id) == [("succeeded", "rotate", 1)] * 3
    done = client.http.get(f"/api/batches/{batch_id}").json_body
    assert done["status"] == "succeeded" and done["started_at"] <= done["finished_at"]
    assert dask.submit(run_batch_job, batch_id, pure=False).result(timeout=60) == "skipped"
