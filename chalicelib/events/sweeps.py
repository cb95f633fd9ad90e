"""The scheduled sweep's handler: peek at the uploads dead-letter queue, then resolve stuck uploads
(chalicelib/services/stuck_uploads.py). Dead-lettered messages are only read, never deleted:
they stay for the alarm and for the operator's redrive."""

from __future__ import annotations

import json
import logging

from chalicelib import queues
from chalicelib.config import get_settings
from chalicelib.events.uploads import uploaded_objects
from chalicelib.services.ingest import UploadedObject
from chalicelib.services.stuck_uploads import expire_unreceived, fail_dead_lettered

log = logging.getLogger("pixelake.sweep")

# While the sweep reads the queue, each message it has read is invisible (so the next receive
# returns others); when it is done it makes them all visible again for the alarm and a redrive.
# If the sweep dies midway they reappear after this long anyway.
PEEK_VISIBILITY_S = 30
MAX_PEEKED = 500


def dead_lettered_uploads() -> tuple[list[UploadedObject], int]:
    """The objects named by the messages in the uploads dead-letter queue, and the delivery count
    after which the uploads queue dead-letters (its redrive policy's maxReceiveCount)."""
    sqs = queues.sqs_client()
    uploads = get_settings().uploads_queue
    policy = sqs.get_queue_attributes(QueueUrl=queues.queue_url(uploads), AttributeNames=["RedrivePolicy"])
    attempts = int(json.loads(policy.get("Attributes", {}).get("RedrivePolicy", "{}")).get("maxReceiveCount", 0))
    dead_letters = queues.queue_url(f"{uploads}-dlq")
    seen: set[str] = set()
    handles: list[str] = []
    objects: list[UploadedObject] = []
    while len(seen) < MAX_PEEKED:
        messages = sqs.receive_message(
            QueueUrl=dead_letters, MaxNumberOfMessages=10, VisibilityTimeout=PEEK_VISIBILITY_S, WaitTimeSeconds=0
        ).get("Messages", [])
        fresh = [m for m in messages if m["MessageId"] not in seen]
        if not fresh:
            break
        for message in fresh:
            seen.add(message["MessageId"])
            handles.append(message["ReceiptHandle"])
            try:
                objects.extend(uploaded_objects(message["Body"]))
            except (ValueError, KeyError, TypeError):
                log.warning("dead letter %s is not an S3 event notification", message["MessageId"])
    for start in range(0, len(handles), 10):
        sqs.change_message_visibility_batch(
            QueueUrl=dead_letters,
            Entries=[
                {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                for i, handle in enumerate(handles[start : start + 10])
            ],
        )
    return objects, attempts


def sweep_uploads(event=None) -> dict:
    """Chalice scheduled handler body: returns how many images it failed and expired."""
    objects, attempts = dead_lettered_uploads()
    outcome = {"failed": fail_dead_lettered(objects, attempts), "expired": expire_unreceived()}
    if any(outcome.values()):
        log.info("upload sweep: %(failed)s dead-lettered failed, %(expired)s expired", outcome)
    return outcome
