"""The ingest and worker functions' rows, and the api's hot reads, through pg8000 directly.

The ingest and worker functions run on every upload and every task, and a cold start that
imports SQLAlchemy pays ~270 ms for it (issue 9): so they use the driver alone, with the same
rows and the same semantics as the ORM repositories (chalicelib/db/images.py, tasks.py). The
api's first request after a cold start is, nearly always, an authenticated read: the principal's
lookup (token or API key) and the list of images are here too, so that request never imports
SQLAlchemy or maps the tables (issue 15: ~2.2× a bare Chalice + pg8000 request with the ORM).
Each query has one owner: these are not also in the ORM repositories.

In the ingest and worker an upload is claimed with INSERT … ON CONFLICT DO NOTHING + SELECT …
FOR UPDATE, so a duplicate delivery waits for the first and then sees its outcome; a finished task is skipped; a database
fault raises, and the SQS handler reports the message for retry.

Connections follow the engine's settings (chalicelib/db/session.py): the URL's host, port or
unix socket, TLS to RDS Proxy, the rotating RDS password, a 10 s connect timeout. One connection
per thread (one per Lambda container), checked before each transaction and replaced after
RECYCLE_S, as the api's pool does with pre-ping and pool_recycle.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
import weakref
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from chalicelib.config import get_settings
from chalicelib.db import transitions
from chalicelib.errors import DatabaseNotConfigured

if TYPE_CHECKING:
    import pg8000.native

RECYCLE_S = 280  # RDS Proxy closes idle client connections; the api's pool recycles at the same age
CONNECT_TIMEOUT_S = 10


def connect_kwargs(url: str, environ: MutableMapping[str, str] | None = None) -> dict:
    """pg8000 connect arguments from a postgres URL of any driver (query items pass through, as
    SQLAlchemy's pg8000 dialect does: `?unix_sock=<dir>/.s.PGSQL.<port>`)."""
    from chalicelib.aws_secrets import database_connect_args

    parts = urlsplit(url)
    kwargs: dict[str, Any] = {
        "user": unquote(parts.username or ""),
        "timeout": CONNECT_TIMEOUT_S,
        **database_connect_args(environ),
    }
    if parts.password is not None:
        kwargs["password"] = unquote(parts.password)
    if parts.hostname:
        kwargs["host"] = parts.hostname
    if parts.port:
        kwargs["port"] = parts.port
    if parts.path.strip("/"):
        kwargs["database"] = unquote(parts.path.strip("/"))
    kwargs.update(parse_qsl(parts.query))
    return kwargs


class _PerThread(threading.local):
    connection: pg8000.native.Connection | None = None
    opened_at: float = 0.0
    closer: weakref.finalize | None = None  # closes the connection when its thread is gone


_state = _PerThread()


@functools.cache
def _password_source():
    """The rotating RDS password (None off AWS: the URL's password stands), cached per process."""
    from chalicelib.aws_secrets import current_password_source

    return current_password_source()


def _open() -> pg8000.native.Connection:
    import pg8000.native

    url = get_settings().database_url
    if not url:
        raise DatabaseNotConfigured("DATABASE_URL is not set")
    kwargs = connect_kwargs(url)
    if _password_source() is not None:
        kwargs["password"] = _password_source()()
    return pg8000.native.Connection(**kwargs)


def _alive(connection: pg8000.native.Connection) -> bool:
    try:
        connection.run("SELECT 1")
        return True
    except Exception:  # a connection RDS Proxy dropped while the container was frozen
        return False


def reset() -> None:
    """Close this thread's connection (tests and the local stack point DATABASE_URL elsewhere)."""
    connection, _state.connection = _state.connection, None
    if _state.closer is not None:
        _state.closer.detach()
        _state.closer = None
    if connection is not None:
        _close_quietly(connection)


def connection() -> pg8000.native.Connection:
    """This thread's connection: reused while it answers and is younger than RECYCLE_S."""
    current = _state.connection
    if current is not None and (time.monotonic() - _state.opened_at > RECYCLE_S or not _alive(current)):
        reset()
    if _state.connection is None:
        _state.connection, _state.opened_at = _open(), time.monotonic()
        # `make dev`'s api serves each request on a new thread: close its connection properly
        # (not by garbage collection of the socket) when the thread is gone.
        _state.closer = weakref.finalize(threading.current_thread(), _close_quietly, _state.connection)
    return _state.connection


def _close_quietly(connection: pg8000.native.Connection) -> None:
    with contextlib.suppress(Exception):
        connection.close()


@contextlib.contextmanager
def transaction() -> Iterator[pg8000.native.Connection]:
    """A transaction that commits on success and rolls back on any exception."""
    db = connection()
    db.run("BEGIN")
    try:
        yield db
        db.run("COMMIT")
    except BaseException:
        try:
            db.run("ROLLBACK")
        except Exception:  # the connection itself failed: open a new one next time
            reset()
        raise


def one(db: pg8000.native.Connection, sql: str, **params) -> dict | None:
    """The first row as a dict by column name, or None."""
    rows = db.run(sql, **params)
    if not rows:
        return None
    return {column["name"]: value for column, value in zip(db.columns, rows[0])}


# Status changes are chalicelib/db/transitions.py's, run on this connection.

# --- users and images (ingest) ----------------------------------------------------------------


def user_exists(db: pg8000.native.Connection, user_id: int) -> bool:
    return bool(db.run("SELECT 1 FROM users WHERE id = :id", id=user_id))


def claim_image_for_ingest(
    db: pg8000.native.Connection,
    *,
    owner_id: int,
    bucket: str,
    key: str,
    size_bytes: int,
    etag: str | None,
    import_id: int | None = None,
) -> dict:
    """The image row (id, owner_id, status, etag, error, import_id) for an uploaded object, created
    if the upload bypassed the API (by `import_id` when a bulk import registers it); locked FOR
    UPDATE so two deliveries of one event, or two attempts of one import partition, ingest it once."""
    db.run(
        "INSERT INTO images (owner_id, bucket, key, size_bytes, etag, status, import_id) "
        "VALUES (:owner_id, :bucket, :key, :size_bytes, :etag, 'pending', :import_id) "
        "ON CONFLICT (bucket, key) DO NOTHING",
        owner_id=owner_id,
        bucket=bucket,
        key=key,
        size_bytes=size_bytes,
        etag=etag,
        import_id=import_id,
    )
    row = one(
        db,
        "SELECT id, owner_id, status, etag, error, import_id FROM images "
        "WHERE bucket = :bucket AND key = :key FOR UPDATE",
        bucket=bucket,
        key=key,
    )
    assert row is not None  # inserted above, or there already
    return row


def storage_locked(db: pg8000.native.Connection, owner_id: int, *, default_quota: int) -> tuple[int, int] | None:
    """(bytes the user's images take, the user's quota: 0 means unlimited), the user's row locked
    until the transaction ends, so that one user's registrations check the quota one at a time
    (FOR NO KEY UPDATE: an ingest inserting the user's images, which takes KEY SHARE, is not
    waited for). None for no such user."""
    user = one(
        db,
        "SELECT coalesce(quota_bytes, :default_quota) AS quota FROM users WHERE id = :id FOR NO KEY UPDATE",
        id=owner_id,
        default_quota=default_quota,
    )
    if user is None:
        return None
    used = db.run("SELECT coalesce(sum(size_bytes), 0) FROM images WHERE owner_id = :id", id=owner_id)
    return int(used[0][0]), int(user["quota"])


def existing_image_keys(db: pg8000.native.Connection, bucket: str, keys: list[str]) -> set[str]:
    """Which of these keys have an image already (an upload's, or an earlier import's)."""
    rows = db.run(
        "SELECT key FROM images WHERE bucket = :bucket AND key IN "
        "(SELECT jsonb_array_elements_text(CAST(:keys AS jsonb)))",
        bucket=bucket,
        keys=transitions.as_json(keys),
    )
    return {row[0] for row in rows}


def register_images(
    db: pg8000.native.Connection, *, owner_id: int, import_id: int, bucket: str, rows: list[dict]
) -> int:
    """Pending images ({key, size_bytes, etag}) registered by a bulk import, each once (a key that
    has an image already is left as it is); the ingest then claims each one. How many it made."""
    made = db.run(
        "INSERT INTO images (owner_id, bucket, key, size_bytes, etag, status, import_id) "
        "SELECT :owner_id, :bucket, r.key, r.size_bytes, r.etag, 'pending', :import_id "
        "FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(key text, size_bytes bigint, etag text) "
        "ON CONFLICT (bucket, key) DO NOTHING RETURNING id",
        owner_id=owner_id,
        bucket=bucket,
        import_id=import_id,
        rows=transitions.as_json(rows),
    )
    return len(made or [])


def pending_uploads_created_before(db: pg8000.native.Connection, seconds: int, limit: int = 500) -> list[dict]:
    """Images still `pending` (their file never ingested) created more than `seconds` ago."""
    rows = db.run(
        "SELECT id, bucket, key FROM images WHERE status = 'pending' "
        "AND created_at < now() - make_interval(secs => :seconds) ORDER BY id LIMIT :limit",
        seconds=seconds,
        limit=limit,
    )
    return [{"id": r[0], "bucket": r[1], "key": r[2]} for r in rows]


# --- the api's hot reads: who is asking, and the list of images -------------------------------


def active_user(db: pg8000.native.Connection, user_id: int) -> dict | None:
    """{id, role} of an active user (None: no such user, or disabled): a token's principal."""
    return one(db, "SELECT id, role FROM users WHERE id = :id AND is_active", id=user_id)


def active_api_key(db: pg8000.native.Connection, key_hash: str) -> dict | None:
    """{key_id, user_id, role} of the unrevoked key with this hash whose user is active."""
    return one(
        db,
        "SELECT k.id AS key_id, u.id AS user_id, u.role FROM api_keys k JOIN users u ON u.id = k.user_id "
        "WHERE k.key_hash = :key_hash AND k.revoked_at IS NULL AND u.is_active",
        key_hash=key_hash,
    )


def touch_api_key(db: pg8000.native.Connection, key_id: int, resolution_s: int) -> None:
    """Record the key's use, at most once per `resolution_s` (a write per request would make every read a write)."""
    db.run(
        "UPDATE api_keys SET last_used_at = now() WHERE id = :id "
        "AND (last_used_at IS NULL OR last_used_at <= now() - make_interval(secs => :resolution))",
        id=key_id,
        resolution=resolution_s,
    )


@dataclass(frozen=True)
class ImageRow:
    """An image as GET /api/images shows it: the attributes of chalicelib.db.tables.Image it reads."""

    id: int
    owner_id: int
    bucket: str
    key: str
    status: str
    error: str | None
    filename: str | None
    content_type: str | None
    format: str | None
    width: int | None
    height: int | None
    size_bytes: int | None
    sha256: str | None
    phash: int | None
    metadata_: dict
    thumbnails: list
    created_at: datetime
    processed_at: datetime | None


# The columns in ImageRow's order (`metadata_` is the column `metadata`, as on the ORM's Image).
_IMAGE_COLUMNS = ", ".join(field.name.rstrip("_") for field in fields(ImageRow))


def images_page(
    db: pg8000.native.Connection, owner_id: int | None, *, limit: int, before_id: int | None, status: str | None
) -> list[ImageRow]:
    """The owner's images (None: an admin, every owner's), newest first, keyset-paginated on id."""
    conditions: list[str] = []
    params: dict[str, Any] = {"limit": limit}
    filters: tuple[tuple[str, Any, str], ...] = (
        ("owner_id", owner_id, "="),
        ("id", before_id, "<"),
        ("status", status, "="),
    )
    for column, value, op in filters:
        if value is not None:
            conditions.append(f"{column} {op} :{column}")
            params[column] = value
    where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
    rows = db.run(f"SELECT {_IMAGE_COLUMNS} FROM images {where}ORDER BY id DESC LIMIT :limit", **params)
    return [ImageRow(*row) for row in rows]


# --- tasks and results (worker, and the analyses ingest runs) ---------------------------------


@dataclass
class ResultRow:
    """One row of `results` (chalicelib.db.tables.Result), before it is written."""

    kind: str
    data: dict
    label: str | None = None
    confidence: float | None = None
    output_key: str | None = None
    output_format: str | None = None
    width: int | None = None
    height: int | None = None
    size_bytes: int | None = None


def top_prediction(data: dict) -> tuple[str | None, float | None]:
    predictions = data.get("predictions") or []
    if not predictions:
        return None, None
    return predictions[0].get("label"), predictions[0].get("confidence")


def analysis_result(data: dict, kind: str = "analysis") -> ResultRow:
    """A result row for an analysis or prediction, with its best prediction's label and confidence lifted out."""
    label, confidence = top_prediction(data)
    return ResultRow(kind=kind, data=data, label=label, confidence=confidence)


def task_image(db: pg8000.native.Connection, image_id: int) -> dict:
    image = one(db, "SELECT id, status, error, key, bucket, format FROM images WHERE id = :id", id=image_id)
    assert image is not None  # a task is deleted with its image
    return image


def task_model(db: pg8000.native.Connection, model_id: int | None) -> dict | None:
    """The registered model version a task runs (None: none, or deleted since)."""
    if model_id is None:
        return None
    return one(
        db,
        "SELECT id, name, version, framework, task, artifact_key, sha256, input_spec, labels "
        "FROM ml_models WHERE id = :id",
        id=model_id,
    )


def _insert_results(db: pg8000.native.Connection, task_id: int, results: list[ResultRow]) -> None:
    for result in results:
        db.run(
            "INSERT INTO results (task_id, image_id, kind, label, confidence, data, output_key, output_format, "
            "width, height, size_bytes) SELECT id, image_id, :kind, :label, :confidence, CAST(:data AS jsonb), "
            ":output_key, :output_format, :width, :height, :size_bytes FROM processing_tasks WHERE id = :id",
            id=task_id,
            kind=result.kind,
            label=result.label,
            confidence=result.confidence,
            data=transitions.as_json(result.data),
            output_key=result.output_key,
            output_format=result.output_format,
            width=result.width,
            height=result.height,
            size_bytes=result.size_bytes,
        )


def succeed_task(db: pg8000.native.Connection, task_id: int, results: list[ResultRow]) -> None:
    # A retry after a crash may have written results already: replace them, never duplicate.
    db.run("DELETE FROM results WHERE task_id = :id", id=task_id)
    _insert_results(db, task_id, results)
    transitions.task_succeeded(db, task_id)


def record_finished_analysis(
    db: pg8000.native.Connection, *, owner_id: int, image_id: int, name: str, data: dict, duration_ms: int
) -> int:
    """An analysis that already ran (at ingest), recorded as a succeeded task with its result.

    The task is new and born finished: two statements, nothing to replace or time."""
    task_id = db.run(
        "INSERT INTO processing_tasks (owner_id, image_id, kind, operation, params, status, queued_at, "
        "started_at, finished_at, duration_ms) VALUES (:owner_id, :image_id, 'analysis', :name, "
        "'{}'::jsonb, 'succeeded', now(), now(), now(), :duration_ms) RETURNING id",
        owner_id=owner_id,
        image_id=image_id,
        name=name,
        duration_ms=duration_ms,
    )[0][0]
    _insert_results(db, task_id, [analysis_result(data)])
    return task_id
