"""Uploads that would stay `pending` forever: a dead-lettered ingest ends `failed` with a reason
(and a redrive ingests it again), a presigned upload never sent ends `expired`. Real SQS redrive
(moto's server), real S3, real PostgreSQL."""

from __future__ import annotations

import json
import time
from urllib.parse import unquote_plus

import requests
from sample_images import jpeg_bytes

from chalicelib import queues, storage
from chalicelib.config import get_settings
from chalicelib.db import direct
from infra.local.pollers import QueuePoller
from infra.local.redrive import redrive

JSON = {"Content-Type": "application/json"}


def presign(client, size: int) -> dict:
    response = client.http.post(
        "/api/uploads",
        body=json.dumps({"filename": "photo.jpg", "content_type": "image/jpeg", "size": size}),
        headers=JSON,
    )
    assert response.status_code == 201, response.body
    return response.json_body


def sweep(client) -> dict:
    return client.lambda_.invoke(
        "sweep_uploads", client.events.generate_cw_event("Scheduled Event", "", {}, [])
    ).payload


def image(client, image_id: int) -> dict:
    return client.http.get(f"/api/images/{image_id}").json_body


def dead_letters_with(key: str) -> list[dict]:
    url = queues.queue_url(f"{get_settings().uploads_queue}-dlq")
    messages = (
        queues.sqs_client()
        .receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0, WaitTimeSeconds=0)
        .get("Messages", [])
    )
    return [m for m in messages if key in unquote_plus(m["Body"])]  # S3 event keys are URL-encoded


def test_a_dead_lettered_ingest_ends_failed_and_a_redrive_ingests_it(client, chalice_app, drain_queue):
    settings = get_settings()
    drain_queue(settings.uploads_queue, expect=100, wait_s=1)  # what earlier tests left
    data = jpeg_bytes()
    upload = presign(client, len(data))
    key = upload["fields"]["key"]
    posted = requests.post(upload["url"], data=upload["fields"], files={"file": ("photo.jpg", data)}, timeout=10)
    assert posted.status_code in (200, 204), posted.text
    storage.delete(key)  # every ingest of its notification now fails (a transient fault: retried)
    poller = QueuePoller(
        queues.sqs_client(),
        queues.queue_url(settings.uploads_queue),
        chalice_app.ingest_upload,
        name="ingest",
        wait_s=1,
    )
    deadline = time.monotonic() + 240  # five deliveries, each retried 2 s after it failed
    while not dead_letters_with(key):  # moto's redrive policy: after the fifth failed delivery
        assert time.monotonic() < deadline, "the notification was not dead-lettered"
        poller.poll_once()
    assert image(client, upload["image_id"])["status"] == "pending"  # what nothing resolved before

    assert sweep(client)["failed"] >= 1
    failed = image(client, upload["image_id"])
    assert failed["status"] == "failed" and "after 5 attempts" in failed["error"]
    assert dead_letters_with(key), "the sweep only peeks: the message stays for the alarm and the redrive"
    assert sweep(client)["failed"] == 0  # idempotent

    storage.put(key, data, "image/jpeg")  # the fault is fixed; the operator redrives
    dead_letters = queues.queue_url(f"{settings.uploads_queue}-dlq")
    assert redrive(queues.sqs_client(), queues.queue_url(settings.uploads_queue), dead_letters) >= 1
    while image(client, upload["image_id"])["status"] != "ready":
        assert time.monotonic() < deadline + 60, image(client, upload["image_id"])
        poller.poll_once()
    assert image(client, upload["image_id"])["error"] is None


def test_a_presigned_upload_never_sent_ends_expired(client, chalice_app):
    never_sent = presign(client, 1000)
    sent = presign(client, 1000)
    storage.put(sent["fields"]["key"], jpeg_bytes(), "image/jpeg")  # arrived, not yet ingested
    fresh = presign(client, 1000)
    past = get_settings().presign_expiry_s + 3600
    with direct.transaction() as db:  # both were requested long ago; `fresh` just now
        db.run(
            "UPDATE images SET created_at = now() - make_interval(secs => :s) WHERE id IN (:a, :b)",
            s=past,
            a=never_sent["image_id"],
            b=sent["image_id"],
        )
    assert sweep(client)["expired"] >= 1
    expired = image(client, never_sent["image_id"])
    assert expired["status"] == "expired" and "expired" in expired["error"]
    assert image(client, sent["image_id"])["status"] == "pending"  # its ingest will resolve it
    assert image(client, fresh["image_id"])["status"] == "pending"
    listed = client.http.get("/api/images?status=expired").json_body
    assert never_sent["image_id"] in [i["id"] for i in listed["items"]]
