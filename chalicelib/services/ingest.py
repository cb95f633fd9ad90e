"""Ingest: an object created under uploads/ (or named by a bulk import) → a ready (or failed) image.

The `uploads` queue handler (chalicelib/events/uploads.py) calls it once per object, and a bulk
import's partitions (chalicelib/services/imports.py) once per object they list. A file that is not an acceptable image ends as a
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
    # A bulk import (services/imports.py) names the owner it checked and itself; an S3 event's
    # object is owned by the user its key names (uploads/<user id>/<name>).
    owner_id: int | None = None
    import_id: int | None = None


@dataclass(frozen=True)
class IngestOutcome:
    """The image's final status, why (a metric dimension: none, too_large, rejected, duplicate, …),
    the error a failed image records, and the import that registered the image (None: an upload)."""

    status: str
    reason: str
    error: str | None = None
    import_id: int | None = None


class _Seen(TypedDict):
    """What the ingest saw of the object, written with the image's final status."""

    etag: str | None
    size_bytes: int


def ingest_object(obj: UploadedObject) -> str:
    """Ingest one uploaded object; returns the image's final status. Raises on transient faults."""
    return ingest(obj).status


def ingest(obj: UploadedObject) -> IngestOutcome:
    """Ingest one object (an upload's or an import's: one path, one validation). Raises on
    transient faults. Emits the IngestDuration and Ingests metrics by outcome and reason
    (chalicelib/metrics.py)."""
    started = time.perf_counter()
    try:
        outcome = _ingest(obj)
    except Exception:
        metrics.ingest_finished("retried", "transient", (time.perf_counter() - started) * 1000)
        raise
    metrics.ingest_finished(outcome.status, outcome.reason, (time.perf_counter() - started) * 1000)
    return outcome


def _ingest(obj: UploadedObject) -> IngestOutcome:
    from chalicelib.imaging.imageio import ImageRejected
    from chalicelib.imaging.ingest import analyze_upload

    settings = get_settings()
    owner_id = obj.owner_id if obj.owner_id is not None else storage.owner_from_upload_key(obj.key)
    with direct.transaction() as db:
        if owner_id is None or not direct.user_exists(db, owner_id):
            log.warning("ignoring %s: its key names no known user (uploads/<user id>/<name>)", obj.key)
            return IngestOutcome("ignored", "unknown_user", "the key names no known user")
        image = direct.claim_image_for_ingest(
            db,
            owner_id=owner_id,
            bucket=obj.bucket,
            key=obj.key,
            size_bytes=obj.size,
            etag=obj.etag,
            import_id=obj.import_id,
        )
        bind(image_id=image["id"], user_id=owner_id)
        seen = _Seen(etag=obj.etag, size_bytes=obj.size)

        def failed(error: str, reason: str) -> IngestOutcome:
            transitions.image_failed(db, image["id"], error, **seen)
            return IngestOutcome("failed", reason, error, image["import_id"])

        if image["status"] in ("ready", "failed") and image["etag"] == obj.etag:
            # A duplicate delivery, or an import's re-run: done already.
            return IngestOutcome(image["status"], "duplicate", image["error"], image["import_id"])
        if obj.size > settings.max_upload_bytes:
            # A presigned POST's size condition is not enforced by every S3 emulator: check again.
            return failed(f"the file is {obj.size:,} bytes; the limit is {settings.max_upload_bytes:,}", "too_large")
        data = storage.get(obj.key, bucket=obj.bucket)
        if len(data) != obj.size:
            # An import's S3 Inventory says the size as its writer put it: the image (and so the
            # owner's stored bytes, which the quota counts) records what was read.
            seen["size_bytes"] = len(data)
            if len(data) > settings.max_upload_bytes:
                return failed(
                    f"the file is {len(data):,} bytes; the limit is {settings.max_upload_bytes:,}", "too_large"
                )
        try:
            outcome = analyze_upload(
                data,
                max_pixels=settings.max_pixels,
                max_frames=settings.max_frames,
                thumbnail_sizes=settings.thumbnail_sizes,
                analyzers=settings.ingest_analyzers,
            )
        except ImageRejected as exc:
            return failed(str(exc), "rejected")
        except Exception as exc:  # decoders raise many types on hostile input: the file is at fault, not us
            log.warning("could not process %s", obj.key, exc_info=True)
            return failed(f"the image could not be decoded ({type(exc).__name__})", "undecodable")
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
        return IngestOutcome(status, "none", None, image["import_id"])
