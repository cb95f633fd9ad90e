"""Batches without a size cap, on real parts: tasks made by INSERT … SELECT, counters kept in the
task statements, dispatch in keyset pages, cancel, resume after a killed worker, the per-user limit.

Images are registered straight in SQL (the upload path has its own tests); the objects they name
are real S3 objects on moto's server, so the tasks run through the workers' `execute`.
"""

from __future__ import annotations

import os
import signal
import uuid

import pytest
from batch_rows import STATUSES, counted, finished, owner_id, post, register_images, results_per_task
from polling import wait_for
from sqlalchemy import select, text

from chalicelib.config import reset_settings
from chalicelib.db.session import session_scope

pytestmark = pytest.mark.timeout(420)


@pytest.fixture
def batch_limit(db, monkeypatch):
    """Set PIXELAKE_MAX_BATCH_IMAGES for one test."""

    def set_limit(value: int) -> None:
        monkeypatch.setenv("PIXELAKE_MAX_BATCH_IMAGES", str(value))
        reset_settings()

    yield set_limit
    monkeypatch.undo()
    reset_settings()


def test_counters_match_the_tasks_from_creation_to_the_end(client, dask_cluster):
    prefix = register_images(120, stored=100)
    response = post(client, "/api/batches", {"prefix": prefix, "operation": "thumbnail", "params": {"size": 32}})
    assert response.status_code == 202, response.body
    created = response.json_body
    assert created["total"] == 120 and created["source"] == {"prefix": prefix}
    assert created["pending"] + created["running"] + created["succeeded"] + created["failed"] == 120

    batch = finished(client, created["id"])
    assert batch["status"] == "succeeded"
    assert (batch["total"], batch["succeeded"], batch["failed"], batch["cancelled"]) == (120, 100, 20, 0)
    assert {status: batch[status] for status in STATUSES} == counted(created["id"])
    assert batch["progress"] == {"percent": 100, "finished": 120}
    assert sorted(set(results_per_task(created["id"]))) == [0, 1]  # failed tasks have none, the others one


def test_the_counters_follow_every_statement_that_changes_tasks(db):
    """Bulk insert, single transitions (both runners), a bulk cancel and a delete, checked against COUNT(*)."""
    from chalicelib.db import direct, transitions
    from chalicelib.db import jobs as job_rows
    from chalicelib.db.tables import Batch, Image

    prefix = register_images(50, stored=0)
    with session_scope() as session:
        batch = Batch(owner_id=owner_id(), request_hash=uuid.uuid4().hex, operation="flip", source={})
        session.add(batch)
        session.flush()
        images = select(Image.id).where(Image.key.startswith(prefix))
        made, last = job_rows.add_batch_tasks(
            session, batch, images.order_by(Image.id).limit(40), kind="operation", params={}
        )
        assert made == 40 and last == max(session.scalars(images.order_by(Image.id).limit(40)))
        assert job_rows.add_batch_tasks(session, batch, images, kind="operation", params={})[0] == 10  # the rest only
        session.refresh(batch)
        assert job_rows.batch_counts(batch)["pending"] == 50
        batch_id = batch.id
        task_ids = job_rows.open_task_page(session, batch_id, after_id=0, limit=1000)
    assert len(task_ids) == 50 and task_ids == sorted(task_ids)

    with direct.transaction() as conn:
        transitions.batch_running(conn, batch_id)
        for task_id in task_ids[:5]:
            transitions.task_running(conn, task_id)
        transitions.task_running(conn, task_ids[0])  # a redelivered claim: running → running
        transitions.task_succeeded(conn, task_ids[0])
        transitions.task_failed(conn, task_ids[1], "bad")
    with session_scope() as session:
        transitions.task_failed(transitions.on_session(session), task_ids[2], "bad too")
    assert counted(batch_id) == {"pending": 45, "running": 2, "succeeded": 1, "failed": 2, "cancelled": 0}
    with session_scope() as session:
        assert transitions.batch_cancelled(transitions.on_session(session), batch_id)
        assert not transitions.batch_cancelled(transitions.on_session(session), batch_id)
        session.execute(text("DELETE FROM processing_tasks WHERE id = :id"), {"id": task_ids[3]})  # a running one
    with session_scope() as session:
        batch = session.get(Batch, batch_id)
        assert batch.status == "cancelled"
        assert job_rows.batch_counts(batch) == counted(batch_id)
        assert job_rows.batch_counts(batch) == {
            "pending": 0,
            "running": 1,
            "succeeded": 1,
            "failed": 2,
            "cancelled": 45,
        }
        assert job_rows.open_task_page(session, batch_id, after_id=0, limit=1000) == [task_ids[4]]
        assert transitions.batch_leftovers_cancelled(transitions.on_session(session), batch_id) == 1
    with session_scope() as session:
        batch = session.get(Batch, batch_id)
        assert job_rows.batch_counts(batch) == counted(batch_id) and batch.tasks_cancelled == 46


def test_a_cancelled_batch_stops_and_its_counts_add_up(client, dask_cluster):
    prefix = register_images(3000, stored=0)
    with session_scope() as session:
        ids = list(session.scalars(text("SELECT id FROM images WHERE key LIKE :p"), {"p": prefix + "%"}))
    created = post(client, "/api/batches", {"image_ids": ids, "operation": "flip"}).json_body  # tasks made at once
    cancelled = post(client, f"/api/batches/{created['id']}/cancel", {})
    assert cancelled.status_code == 200, cancelled.body
    assert cancelled.json_body["status"] == "cancelled" and cancelled.json_body["pending"] == 0

    batch = finished(client, created["id"])
    assert batch["status"] == "cancelled"
    assert batch["cancelled"] > 2000, batch  # the tasks not yet started
    assert batch["succeeded"] + batch["failed"] + batch["cancelled"] == batch["total"] == 3000
    assert {status: batch[status] for status in STATUSES} == counted(created["id"])
    again = post(client, f"/api/batches/{created['id']}/cancel", {})
    assert again.status_code == 409 and again.json_body["error"]["code"] == "batch_finished"
    assert post(client, f"/api/batches/{created['id']}/resume", {}).status_code == 409
    assert post(client, "/api/batches/999999999/cancel", {}).status_code == 404

    # A prefix's batch cancelled before its driver made all its tasks: the total is what was made.
    early = post(client, "/api/batches", {"prefix": prefix, "operation": "flip"}).json_body
    assert post(client, f"/api/batches/{early['id']}/cancel", {}).status_code == 200
    batch = finished(client, early["id"])
    assert batch["status"] == "cancelled" and batch["total"] <= 3000
    assert {status: batch[status] for status in STATUSES} == counted(early["id"])
    assert sum(batch[status] for status in STATUSES) == batch["total"]


def test_a_batch_survives_a_killed_worker_and_every_task_ends_once(client, dask_cluster):
    """SIGKILL the worker not running the batch's driver mid-batch: the scheduler reruns its
    partition elsewhere, the rerun skips the tasks already finished, and the counts come out right."""
    from chalicelib import compute
    from chalicelib.services.dask_submit import batch_key

    prefix = register_images(240, stored=240, size=(480, 360))
    created = post(client, "/api/batches", {"prefix": prefix, "operation": "blur", "params": {"sigma": 6}}).json_body
    batch_id = created["id"]
    dask = compute.dask_client()

    def driver_and_progress():
        processing = dask.processing()
        driver = [worker for worker, keys in processing.items() if batch_key(batch_id) in keys]
        batch = client.http.get(f"/api/batches/{batch_id}").json_body
        return driver and 20 <= batch["succeeded"] < 200 and (driver[0], batch)

    driver, before = wait_for(driver_and_progress, timeout=240, interval=0.05, what="the batch under way")
    pids = dask.run(os.getpid)
    [victim] = [address for address in pids if address != driver]
    os.kill(pids[victim], signal.SIGKILL)

    batch = finished(client, batch_id)
    assert batch["status"] == "succeeded", batch
    assert (batch["total"], batch["succeeded"], batch["failed"], batch["cancelled"]) == (240, 240, 0, 0)
    assert {status: batch[status] for status in STATUSES} == counted(batch_id)
    assert results_per_task(batch_id) == [1] * 240  # no task's results doubled by the rerun
    assert before["succeeded"] < 240
    wait_for(lambda: len(dask.scheduler_info(n_workers=-1)["workers"]) == 2, timeout=120, what="the worker back")


def test_resume_runs_only_the_unfinished_tasks(client, dask_cluster):
    """A batch left `running` with no dispatcher (its scheduler restarted): resume finishes it,
    and the tasks that had finished are not run again."""
    from chalicelib.db import direct, transitions
    from chalicelib.db import jobs as job_rows
    from chalicelib.db.tables import Batch, Image

    prefix = register_images(30, stored=30)
    with session_scope() as session:
        batch = Batch(owner_id=owner_id(), request_hash=uuid.uuid4().hex, operation="flip", source={"prefix": prefix})
        session.add(batch)
        session.flush()
        images = select(Image.id).where(Image.key.startswith(prefix))
        batch.total, _ = job_rows.add_batch_tasks(session, batch, images, kind="operation", params={})
        batch_id = batch.id
        *done, orphan = job_rows.open_task_page(session, batch_id, after_id=0, limit=11)
    with direct.transaction() as conn:
        transitions.batch_running(conn, batch_id)
        for task_id in done:  # finished before the restart
            transitions.task_running(conn, task_id)
            transitions.task_failed(conn, task_id, "finished before the restart")
        transitions.task_running(conn, orphan)  # running when its worker went away
    resumed = post(client, f"/api/batches/{batch_id}/resume", {})
    assert resumed.status_code == 202, resumed.body
    batch = finished(client, batch_id)
    assert (batch["status"], batch["succeeded"], batch["failed"]) == ("succeeded", 20, 10)
    assert {status: batch[status] for status in STATUSES} == counted(batch_id)
    with session_scope() as session:
        errors = set(session.scalars(text("SELECT error FROM processing_tasks WHERE batch_id = :id"), {"id": batch_id}))
    assert errors == {None, "finished before the restart"}  # the finished ones were left as they were


def test_the_per_user_limit_counts_unfinished_batches(client, dask_cluster, batch_limit):
    from chalicelib.db import jobs as job_rows
    from chalicelib.db.tables import Batch, Image

    with session_scope() as session:  # other tests' unfinished batches, if any, count too
        base = job_rows.queued_tasks(session, owner_id())
    batch_limit(base + 50)
    big = register_images(60, stored=0)
    refused = post(client, "/api/batches", {"prefix": big, "operation": "flip"})
    assert refused.status_code == 400 and refused.json_body["error"]["code"] == "batch_too_large"
    assert f"{base + 50:,}" in refused.json_body["error"]["message"]
    with session_scope() as session:  # nothing of the refused batch was kept
        assert not session.scalar(text("SELECT count(*) FROM batches WHERE source ->> 'prefix' = :p"), {"p": big})

    # 30 tasks left pending by another batch of the same user (no dispatcher: it stays unfinished).
    queued = register_images(30, stored=0)
    with session_scope() as session:
        other = Batch(owner_id=owner_id(), request_hash=uuid.uuid4().hex, operation="flip", source={}, status="running")
        session.add(other)
        session.flush()
        images = select(Image.id).where(Image.key.startswith(queued))
        other.total, _ = job_rows.add_batch_tasks(session, other, images, kind="operation", params={})
        other_id = other.id
    fits_alone = register_images(30, stored=0)
    refused = post(client, "/api/batches", {"prefix": fits_alone, "operation": "flip"})
    assert (
        refused.status_code == 400 and f"unfinished batches hold {base + 30:,}" in refused.json_body["error"]["message"]
    )
    assert post(client, f"/api/batches/{other_id}/cancel", {}).status_code == 200
    accepted = post(client, "/api/batches", {"prefix": fits_alone, "operation": "flip"})
    assert accepted.status_code == 202 and accepted.json_body["total"] == 30
    finished(client, accepted.json_body["id"])
