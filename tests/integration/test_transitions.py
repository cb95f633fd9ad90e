"""chalicelib/db/transitions.py on real PostgreSQL, through both runners: the pg8000 connection
(ingest, worker) and an ORM session's connection (api, Dask) write the same rows."""

from __future__ import annotations

import pytest

from chalicelib.db import direct, transitions
from chalicelib.db.session import session_scope
from chalicelib.db.tables import ProcessingTask, TrainingJob


@pytest.fixture
def image_id(db):
    from chalicelib.db.users import ensure_local_user

    with session_scope() as session:
        owner = ensure_local_user(session).id
    with direct.transaction() as conn:
        return direct.claim_image_for_ingest(
            conn, owner_id=owner, bucket="b", key="uploads/1/t.jpg", size_bytes=1, etag="e"
        )["id"]


def new_task(image_id: int) -> int:
    from chalicelib.db import tasks
    from chalicelib.db.tables import Image

    with session_scope() as session:
        owner = session.get(Image, image_id).owner_id
        return tasks.create(
            session, owner_id=owner, image_id=image_id, kind="operation", operation="flip", params={}
        ).id


def task_row(task_id: int) -> ProcessingTask:
    with session_scope() as session:
        return session.get(ProcessingTask, task_id)


@pytest.mark.parametrize("runner", ["pg8000", "session"])
def test_a_task_fails_once_on_the_database_clock_whichever_path_fails_it(image_id, runner):
    task_id = new_task(image_id)
    with direct.transaction() as conn:
        assert transitions.task_running(conn, task_id)["attempts"] == 1
    if runner == "pg8000":
        with direct.transaction() as conn:
            assert transitions.task_failed(conn, task_id, "first")
            assert not transitions.task_failed(conn, task_id, "second")
    else:
        with session_scope() as session:
            assert transitions.task_failed(transitions.on_session(session), task_id, "first")
            assert not transitions.task_failed(transitions.on_session(session), task_id, "second")
    task = task_row(task_id)
    assert (task.status, task.error) == ("failed", "first")
    assert task.started_at <= task.finished_at and task.duration_ms >= 0
    with direct.transaction() as conn:
        assert transitions.task_running(conn, task_id) is None  # finished: a redelivery is skipped


def test_a_cancel_wins_over_a_late_result(image_id):
    from chalicelib.db.tables import Dataset, Image

    with session_scope() as session:
        owner = session.get(Image, image_id).owner_id
        dataset = Dataset(owner_id=owner, name="d", source={})
        session.add(dataset)
        session.flush()
        job = TrainingJob(
            owner_id=owner, dataset_id=dataset.id, model_name="m", algorithm="knn", features="pixels", params={}
        )
        session.add(job)
        session.flush()
        job_id = job.id
    with session_scope() as session:
        runner = transitions.on_session(session)
        spec = transitions.job_running(runner, job_id)
        assert spec is not None and spec["dataset_id"] == dataset.id and spec["params"] == {}
        assert transitions.job_progress(runner, job_id, progress=40, stage="features") == "running"
        assert transitions.job_finished(runner, job_id, "cancelled")
        assert transitions.job_progress(runner, job_id, progress=50, stage="features") == "cancelled"
        assert not transitions.job_finished(runner, job_id, "succeeded", metrics={"accuracy": 1.0})
        assert transitions.job_running(runner, job_id) is None
        with pytest.raises(ValueError, match="not a finished status"):
            transitions.job_finished(runner, job_id, "running")
    with session_scope() as session:
        job = session.get(TrainingJob, job_id)
        assert (job.status, job.stage, job.progress, job.metrics) == ("cancelled", "cancelled", 40, {})
        assert job.started_at <= job.finished_at
