"""Uploads that would otherwise stay `pending` forever, resolved by a sweep (every 10 minutes on
AWS, every minute in the local stack):

- an upload whose ingest message was dead-lettered (five transient failures) ends `failed` with
  the reason; the message stays in the dead-letter queue, so the alarm still fires and an
  operator's redrive (docs/operations.md) ingests it again;
- a presigned upload whose file did not arrive before the URL expired ends `expired`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from chalicelib import storage
from chalicelib.config import get_settings
from chalicelib.db import direct, transitions
from chalicelib.logs import log_context
from chalicelib.services.ingest import UploadedObject

log = logging.getLogger("pixelake.sweep")

DEAD_LETTERED = (
    "the upload could not be processed after {attempts} attempts (a fault on our side, not in the file); "
    "it will be processed again when the operator redrives it"
)
NEVER_ARRIVED = "the file was not uploaded before the upload URL expired ({seconds} s): request a new upload"
# An object that arrived at the last moment is ingested within seconds: leave it that long.
ARRIVAL_GRACE_S = 300


@dataclass(frozen=True)
class SweepOutcome:
    failed: int
    expired: int


def fail_dead_lettered(objects: list[UploadedObject], attempts: int) -> int:
    """Mark the images of dead-lettered upload messages failed; returns how many changed."""
    changed = 0
    with direct.transaction() as db:
        for obj in objects:
            image_id = transitions.image_dead_lettered(
                db, bucket=obj.bucket, key=obj.key, reason=DEAD_LETTERED.format(attempts=attempts)
            )
            if image_id is not None:
                with log_context(image_id=image_id):
                    log.warning("image of %s failed: its ingest was dead-lettered after %s attempts", obj.key, attempts)
                changed += 1
    return changed


def expire_unreceived() -> int:
    """Expire pending uploads older than the presigned URL's lifetime whose object is not in S3."""
    settings = get_settings()
    expired = 0
    with direct.transaction() as db:
        candidates = direct.pending_uploads_created_before(db, settings.presign_expiry_s + ARRIVAL_GRACE_S)
    for image in candidates:
        if storage.head(image["key"], bucket=image["bucket"]) is not None:
            continue  # it arrived: its ingest (or its dead letter) resolves it
        with direct.transaction() as db:
            if transitions.image_expired(db, image["id"], NEVER_ARRIVED.format(seconds=settings.presign_expiry_s)):
                with log_context(image_id=image["id"]):
                    log.info("upload %s expired: the file never arrived", image["key"])
                expired += 1
    return expired
