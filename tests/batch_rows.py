"""Batches on real parts, for the integration tests: images registered straight in SQL (the objects
they name real S3 objects), the batch polled through the API until it ends, its tasks counted the
slow way. Shared by test_batch_scale.py and test_scheduler_restart.py."""

from __future__ import annotations

import json
import uuid

from polling import wait_for
from sample_images import jpeg_bytes
from sqlalchemy import text

from chalicelib import storage
from chalicelib.config import get_settings
from chalicelib.db.session import session_scope

JSON = {"Content-Type": "application/json"}
STATUSES = ("pending", "running", "succeeded", "failed", "cancelled")


def post(client, path, body):
    return client.http.post(path, body=json.dumps(body), headers=JSON)


def owner_id() -> int:
    from chalicelib.db.users import ensure_local_user

    with session_scope() as session:
        return ensure_local_user(session).id


def register_images(count: int, *, stored: int, size=(64, 48)) -> str:
    """`count` ready images under a fresh prefix of the local user's uploads, made by one INSERT …
    SELECT; the first `stored` have an object in S3 (the rest fail when run: no such key)."""
    owner = owner_id()
    prefix = f"{storage.user_upload_prefix(owner)}scale-{uuid.uuid4().hex[:8]}/"
    data = jpeg_bytes(size)
    for n in range(1, stored + 1):
        storage.put(f"{prefix}{n:07d}.jpg", data, "image/jpeg")
    with session_scope() as session:
        session.execute(
            text(
                "INSERT INTO images (owner_id, bucket, key, status, format, content_type, width, height, size_bytes) "
                "SELECT :owner, :bucket, :prefix || lpad(n::text, 7, '0') || '.jpg', 'ready', 'JPEG', 'image/jpeg', "
                ":width, :height, :bytes FROM generate_series(1, :count) AS n"
            ),
            {
                "owner": owner,
                "bucket": get_settings().bucket,
                "prefix": prefix,
                "count": count,
                "width": size[0],
                "height": size[1],
                "bytes": len(data),
            },
        )
    return prefix


def counted(batch_id: int) -> dict[str, int]:
    """The batch's tasks by status, counted the slow way: what the counters must equal."""
    with session_scope() as session:
        rows = dict(
            session.execute(
                text("SELECT status, count(*) FROM processing_tasks WHERE batch_id = :id GROUP BY status"),
                {"id": batch_id},
            ).all()
        )
    return {status: rows.get(status, 0) for status in STATUSES}


def finished(client, batch_id: int, timeout: float = 300) -> dict:
    def check():
        batch = client.http.get(f"/api/batches/{batch_id}").json_body
        done = batch["status"] in ("succeeded", "failed", "cancelled") and not batch["pending"] + batch["running"]
        return batch if done else None

    return wait_for(check, timeout=timeout, interval=0.2, what=f"batch {batch_id}")


def results_per_task(batch_id: int) -> list[int]:
    with session_scope() as session:
        return list(
            session.scalars(
                text(
                    "SELECT count(r.id) FROM processing_tasks t LEFT JOIN results r ON r.task_id = t.id "
                    "WHERE t.batch_id = :id GROUP BY t.id"
                ),
                {"id": batch_id},
            )
        )
