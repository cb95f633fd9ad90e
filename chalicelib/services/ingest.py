"""Ingest: an object created under uploads/ → a ready (or failed) image.

The `uploads` queue handler (chalicelib/events/uploads.py) calls it once per object. A file that is not an acceptable image ends as a
`failed` image with the reason and the message is consumed; a transient fault (database or
S3 unreachable) reports only that record as failed (ReportBatchItemFailures), so SQS retries
it and, after maxReceiveCount, moves it to the dead-letter queue.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TypedDict

from chalicelib import metrics, storage
from chalicelib.config import get_settings
from chalicelib.db import direct, transitions
from chalicelib.logs import bind

log = logging.getLogger("pixelake.ingest")


@dataclass(frozen=True)
class UploadedObject:
    bucket: str
    key: str
    size: int
    etag: str | None


class _Seen(TypedDict):
    """What the ingest saw of the object, written with the image's final status."""

    etag: str | None
    size_bytes: int


def ingest_object(obj: UploadedObject) -> str:
    """Ingest one uploaded object; returns the image's final status. Raises on transient faults.
    Emits the IngestDuration and Ingests metrics by outcome and reason (chalicelib/metrics.py)."""
    started = time.perf_counter()
    try:
        status, reason = _ingest(obj)
    except Exception:
        metrics.ingest_finished("retried", "transient", (time.perf_counter() - started) * 1000)
        raise
    metrics.ingest_finished(status, reason, (time.perf_counter() - started) * 1000)
    return status


def _ingest(obj: UploadedObject) -> tuple[str, str]:
    """The image's final status and why, as a metric dimension (none, too_large, rejected, …)."""
    from chalicelib.imaging.imageio import ImageRejected
    from chalicelib.imaging.ingest import analyze_upload

    settings = get_settings()
    owner_id = storage.owner_from_upload_key(obj.key)
    with direct.transaction() as db:
        if owner_id is None or not direct.user_exists(db, owner_id):
            log.warning("ignoring %s: its key names no known user (uploads/<user id>/<name>)", obj.key)
            return "ignored", "unknown_user"
        image = direct.claim_image_for_ingest(
            db, owner_id=owner_id, bucket=obj.bucket, key=obj.key, size_bytes=obj.size, etag=obj.etag
        )
        bind(image_id=image["id"], user_id=owner_id)
        if image["status"] in ("ready", "failed") and image["etag"] == obj.etag:
            return image["status"], "duplicate"  # a duplicate delivery: done already
        seen = _Seen(etag=obj.etag, size_bytes=obj.size)
        if obj.size > settings.max_upload_bytes:
            # A presigned POST's size condition is not enforced by every S3 emulator: check again.
            limit = f"the file is {obj.size:,} bytes; the limit is {settings.max_upload_bytes:,}"
            return transitions.image_failed(db, image["id"], limit, **seen), "too_large"
        data = storage.get(obj.key, bucket=obj.bucket)
        try:
            outcome = analyze_upload(
                data,
                max_pixels=settings.max_pixels,
                max_frames=settings.max_frames,
                thumbnail_sizes=settings.thumbnail_sizes,
                analyzers=settings.ingest_analyzers,
            )
        except ImageRejected as exc:
            return transitions.image_failed(db, image["id"], str(exc), **seen), "rejected"
        except Exception as exc:  # decoders raise many types on hostile input: the file is at fault, not us
            log.warning("could not process %s", obj.key, exc_info=True)
            undecodable = f"the image could not be decoded ({type(exc).__name__})"
            return transitions.image_failed(db, image["id"], undecodable, **seen), "undecodable"
        thumbnails = []
        for thumb in outcome.thumbnails:
            key = storage.thumbnail_key(image["id"], thumb.size, thumb.format)
            storage.put(key, thumb.data, thumb.content_type, bucket=obj.bucket)
            thumbnails.append(
                {
                    "size": thumb.size,
                    "width": thumb.width,
                    "height": thumb.height,
                    "format": thumb.format,
                    "key": key,
                    "size_bytes": len(thumb.data),
                }
            )
        status = transitions.image_ready(db, image["id"], outcome, thumbnails, **seen)
        for name, (result, duration_ms) in outcome.analyses.items():
            direct.record_finished_analysis(
                db, owner_id=image["owner_id"], image_id=image["id"], name=name, data=result, duration_ms=duration_ms
            )
        return status, "none"
