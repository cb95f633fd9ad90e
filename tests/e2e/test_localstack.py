"""Pixelake's upload flow on LocalStack's S3 and SQS (host mode, Python 3.13, `make localstack`):
a presigned POST is size-limited by LocalStack, the S3 → SQS notification fires and the ingest
handler makes the image ready. Skipped, with the reason, where LocalStack is not installed."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests
from sample_images import jpeg_bytes

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("PIXELAKE_LOCALSTACK_VENV", ROOT / ".pixelake" / "localstack" / "venv"))
PYTHON = VENV / "bin" / "python"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def localstack(tmp_path_factory):
    if not PYTHON.exists():
        pytest.skip(
            f"LocalStack is not installed in {VENV}: `make localstack-venv` (needs Python 3.13 and the network)"
        )
    port = free_port()
    env = {
        **os.environ,
        "GATEWAY_SERVER": "hypercorn",  # the default twisted gateway binds 0.0.0.0 whatever GATEWAY_LISTEN says
        "GATEWAY_LISTEN": f"127.0.0.1:{port}",
        "LOCALSTACK_HOST": f"127.0.0.1:{port}",
        "SERVICES": "s3,sqs",
        "SKIP_SSL_CERT_DOWNLOAD": "1",
        "DISABLE_EVENTS": "1",
    }
    log = (tmp_path_factory.mktemp("localstack") / "localstack.log").open("w")
    process = subprocess.Popen([str(PYTHON), "-m", "localstack.runtime.main"], env=env, stdout=log, stderr=log)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            health = requests.get(f"{endpoint}/_localstack/health", timeout=2).json()["services"]
            if health.get("s3") in ("available", "running") and health.get("sqs") in ("available", "running"):
                break
        except requests.RequestException:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"LocalStack did not start: see {log.name}")
        time.sleep(0.5)
    yield endpoint
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture
def on_localstack(localstack, client, monkeypatch):
    """The functions' S3 and SQS pointed at LocalStack, provisioned as the local stack does."""
    from chalicelib import queues, storage
    from chalicelib.config import get_settings, reset_settings
    from infra.local.resources import provision

    def reset():
        reset_settings()
        storage.s3_client.cache_clear()
        queues.sqs_client.cache_clear()
        queues.queue_url.cache_clear()

    monkeypatch.setenv("AWS_ENDPOINT_URL", localstack)
    reset()
    provision(storage.s3_client(), queues.sqs_client(), get_settings())
    yield client
    monkeypatch.undo()
    reset()


def test_a_presigned_upload_is_limited_notified_and_ingested_on_localstack(on_localstack, chalice_app):
    import json

    from chalicelib import queues
    from chalicelib.config import get_settings
    from infra.local.pollers import QueuePoller

    client = on_localstack
    data = jpeg_bytes()
    response = client.http.post(
        "/api/uploads",
        body=json.dumps({"filename": "photo.jpg", "content_type": "image/jpeg", "size": len(data)}),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.body
    upload = response.json_body
    assert upload["url"].startswith("http://127.0.0.1:")
    too_big = requests.post(
        upload["url"], data=upload["fields"], files={"file": ("a.jpg", data + b"0" * 1000)}, timeout=30
    )
    assert too_big.status_code == 400 and "EntityTooLarge" in too_big.text  # LocalStack enforces the policy
    sent = requests.post(upload["url"], data=upload["fields"], files={"file": ("photo.jpg", data)}, timeout=30)
    assert sent.status_code in (200, 204), sent.text

    poller = QueuePoller(
        queues.sqs_client(), queues.queue_url(get_settings().uploads_queue), chalice_app.ingest_upload, name="ingest"
    )
    deadline = time.monotonic() + 120
    while (image := client.http.get(f"/api/images/{upload['image_id']}").json_body)["status"] != "ready":
        assert image["status"] in ("pending", "processing"), image
        assert time.monotonic() < deadline, f"the upload was not ingested: {image}"
        poller.poll_once()
    from PIL import Image

    with Image.open(io.BytesIO(data)) as picture:
        assert (image["format"], image["width"], image["height"]) == ("jpeg", *picture.size)
