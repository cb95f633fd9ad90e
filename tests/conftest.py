"""Real parts for every test: PostgreSQL, S3 and SQS over HTTP (moto's server on loopback).

PostgreSQL is DATABASE_URL's server when set (a fresh database is created for the run and
dropped after), else an embedded PostgreSQL in a temporary directory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest
from databases import create_fresh_database, drop_database

PROJECT_DIR = Path(__file__).resolve().parents[1]
os.environ.setdefault("PIXELAKE_TEST_RUN", uuid.uuid4().hex[:8])


def _admin_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    from chalicelib.db.session import normalize_url

    return make_url(normalize_url(url)).set(database="postgres").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_server_url():
    """An admin URL on a running PostgreSQL server (system one, or embedded for this run)."""
    if os.environ.get("DATABASE_URL"):
        yield _admin_url(os.environ["DATABASE_URL"])
        return
    from infra.local.postgres import EmbeddedPostgres

    home = Path(tempfile.mkdtemp(prefix="pixelake-test-pg-"))
    server = EmbeddedPostgres(home / "data")
    url = server.start()
    yield _admin_url(url)
    server.stop()
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(postgres_server_url):
    name = f"pixelake_test_{os.environ['PIXELAKE_TEST_RUN']}"
    url = create_fresh_database(postgres_server_url, name)
    from chalicelib.db.migrate import upgrade

    upgrade(url)
    yield url
    from chalicelib.db.session import reset_engine

    reset_engine()
    drop_database(postgres_server_url, name)


@pytest.fixture(scope="session")
def moto_endpoint():
    from infra.local.s3_server import MotoServer

    server = MotoServer(state_dir=None, port=0).start()
    yield server.endpoint
    server.stop()


@pytest.fixture(scope="session")
def stack_env(database_url, moto_endpoint):
    """The process environment of a deployed function, pointed at the test's real parts."""
    env = {
        "DATABASE_URL": database_url,
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PIXELAKE_STAGE": "local",
        "PIXELAKE_AUTH": "off",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    _reset_clients()
    from chalicelib import queues, storage
    from chalicelib.config import get_settings
    from infra.local.resources import provision

    queue_urls = provision(storage.s3_client(), queues.sqs_client(), get_settings())
    yield {**env, "queue_urls": queue_urls}
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    _reset_clients()


def _reset_clients() -> None:
    from chalicelib import queues, storage
    from chalicelib.config import reset_settings
    from chalicelib.db.session import reset_engine

    reset_settings()
    reset_engine()
    storage.s3_client.cache_clear()
    queues.sqs_client.cache_clear()
    queues.queue_url.cache_clear()
    from chalicelib.services import identity

    identity._local_principal.cache_clear()


def _wait_for_an_idle_cluster() -> None:
    """A previous test's work may still run on the cluster (a cancelled batch's partitions, a
    rerun after a killed worker): emptying the tables under it deadlocks or hands its writes to
    the next test, so wait until no worker is processing anything."""
    from polling import wait_for

    from chalicelib import compute

    client = compute.dask_client()
    wait_for(lambda: not any(client.processing().values()), timeout=180, what="the Dask cluster idle")


@pytest.fixture
def db(stack_env):
    """A clean database for the test (all rows removed, ids restarted)."""
    from sqlalchemy import text

    from chalicelib.db.session import get_engine
    from chalicelib.db.tables import Base
    from chalicelib.services import identity

    if os.environ.get("DASK_SCHEDULER_ADDRESS"):
        _wait_for_an_idle_cluster()
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with get_engine().begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    identity._local_principal.cache_clear()
    return stack_env


@pytest.fixture
def chalice_app(stack_env):
    import app

    return app


@pytest.fixture
def client(db, chalice_app):
    from chalice.test import Client

    with Client(chalice_app.app, stage_name="local", project_dir=str(PROJECT_DIR)) as test_client:
        yield test_client


@pytest.fixture
def drain_queue(stack_env):
    """Receive everything waiting on a queue (by name) and return the messages."""
    from chalicelib import queues

    def drain(queue_name: str, *, expect: int = 1, wait_s: int = 5) -> list[dict]:
        url = queues.queue_url(queue_name)
        messages: list[dict] = []
        deadline_polls = wait_s
        while len(messages) < expect and deadline_polls > 0:
            batch = (
                queues.sqs_client()
                .receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, AttributeNames=["All"])
                .get("Messages", [])
            )
            for m in batch:
                queues.sqs_client().delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            messages += batch
            deadline_polls -= 0 if batch else 1
        return messages

    return drain


@pytest.fixture
def workers(db, chalice_app):
    """Pollers feeding the uploads, tasks, ml-tasks and inference queues to the Chalice handlers, as the local stack runs them."""
    from chalicelib import queues
    from chalicelib.config import get_settings
    from infra.local.pollers import QueuePoller

    settings = get_settings()
    pollers = [
        QueuePoller(
            queues.sqs_client(),
            queues.queue_url(settings.uploads_queue),
            chalice_app.ingest_upload,
            name="ingest_upload",
            wait_s=1,
        ),
        QueuePoller(
            queues.sqs_client(), queues.queue_url(settings.tasks_queue), chalice_app.run_task, name="run_task", wait_s=1
        ),
        QueuePoller(
            queues.sqs_client(),
            queues.queue_url(settings.ml_tasks_queue),
            chalice_app.run_ml_task,
            name="run_ml_task",
            wait_s=1,
        ),
        QueuePoller(
            queues.sqs_client(),
            queues.queue_url(settings.inference_queue),
            chalice_app.run_inference,
            name="run_inference",
            wait_s=1,
        ),
    ]
    for poller in pollers:
        poller.start()
    yield pollers
    for poller in pollers:
        poller.stop()
    for poller in pollers:
        poller.join(timeout=10)


@pytest.fixture
def ready_image(client, workers):
    """Upload an image through the API and wait (polling) until ingest made it ready."""
    import time

    from sample_images import multipart

    def upload(data: bytes, name: str = "photo.jpg") -> dict:
        body, headers = multipart("file", name, data)
        image_id = client.http.post("/api/upload", body=body, headers=headers).json_body["id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            image = client.http.get(f"/api/images/{image_id}").json_body
            if image["status"] in ("ready", "failed"):
                return image
            time.sleep(0.1)
        raise AssertionError(f"image {image_id} was not processed in time")

    return upload


@pytest.fixture(scope="session")
def dask_cluster(stack_env):
    """A real LocalCluster with two worker processes; they inherit the test environment."""
    from chalicelib import compute
    from chalicelib.config import reset_settings

    cluster = compute.start_local_cluster(2)
    os.environ["DASK_SCHEDULER_ADDRESS"] = cluster.scheduler_address
    reset_settings()
    compute.reset_client()
    yield cluster
    compute.reset_client()
    cluster.close()
    os.environ.pop("DASK_SCHEDULER_ADDRESS", None)
    reset_settings()
