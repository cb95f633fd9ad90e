"""The `uploads` queue's Lambda handler: S3 event notifications → one ingest per created object.

A record that is not an S3 event is dropped; a transient fault reports only its record for
retry (chalicelib/events/records.py).
"""

from __future__ import annotations

import json
import logging
from urllib.parse import unquote_plus

from chalicelib import storage
from chalicelib.events.records import handle_records
from chalicelib.logs import log_context
from chalicelib.services.ingest import UploadedObject, ingest_object

log = logging.getLogger("pixelake.ingest")


def uploaded_objects(message_body: str) -> list[UploadedObject]:
    """The created objects under uploads/ named by an S3 event notification (the test event names none)."""
    event = json.loads(message_body)
    objects = []
    for record in event.get("Records", []):
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        s3 = record["s3"]
        # moto and LocalStack URL-encode keys differently; S3 itself uses form encoding.
        key = unquote_plus(s3["object"]["key"])
        if key.startswith(storage.UPLOAD_PREFIX):
            objects.append(
                UploadedObject(s3["bucket"]["name"], key, int(s3["object"].get("size", 0)), s3["object"].get("eTag"))
            )
    return objects


def ingest_objects(objects: list[UploadedObject]) -> None:
    for obj in objects:
        with log_context():  # the image and user ids bound by the ingest end with this object
            log.info("ingested %s: %s", obj.key, ingest_object(obj))


def ingest_upload(event) -> dict:
    """Chalice SQS handler body; returns the partial-batch response."""
    return handle_records(event, uploaded_objects, ingest_objects, expects="an S3 event notification")
