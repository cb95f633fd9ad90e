"""A bulk import's work on Dask (chalicelib/services/imports.py creates and reads imports).

The driver, `run_import` (submitted as chalicelib/services/dask_jobs.py `run_import_job`), lists
the objects a page at a time (a prefix) or streams the manifest (a CSV of keys, or an S3 Inventory
CSV, gzip'd or not), and submits a partition of PIXELAKE_IMPORT_PARTITION_KEYS objects as soon as
it has one, at most IN_FLIGHT_PER_THREAD per worker thread in flight, so its memory does not grow
with the bucket. `import_partition` runs every object through the uploads' own ingest
(chalicelib/services/ingest.py: the same size, type and decode checks, the same `ready`/`failed`
image) and adds its counts and failed files to the import once (`transitions.import_partition_counted`).
Before the ingest, a partition registers its new objects within the owner's storage quota
(`register_within_quota`): a file that would take the user over it is a failed file, with the reason.
The driver reads the import's status between partitions: once it is `cancelled` it submits no
more, and the partitions in flight finish and are counted.

A partition retried after its worker died re-ingests nothing (an image's key is unique and a
finished image with the same ETag is not ingested again) and counts each image by its status when
this import registered it (`images.import_id`); a restarted driver lists again and skips the
partitions counted.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from chalicelib import storage
from chalicelib.config import get_settings
from chalicelib.db.session import session_scope
from chalicelib.errors import ApiError

if TYPE_CHECKING:
    from distributed import Client

    from chalicelib.services.ingest import UploadedObject

log = logging.getLogger("pixelake.imports")

# An S3 Inventory's CSV has no header: its columns are the manifest.json's `fileSchema`.
INVENTORY_COLUMNS = "Bucket, Key, Size, LastModifiedDate, ETag"
# Partitions in flight per worker thread: enough that a slow one leaves no thread idle, few
# enough that the driver holds a bounded number of keys.
IN_FLIGHT_PER_THREAD = 2


@dataclass(frozen=True)
class Entry:
    """One object to import: its bucket and key, and its size and ETag when the source says them."""

    bucket: str
    key: str
    size: int | None = None
    etag: str | None = None


# --- what is imported: the listing or the manifest ---------------------------------------------


def inventory_columns(columns: str) -> dict[str, int]:
    """Positions of the inventory's Bucket, Key and (when present) Size and ETag columns; 400 without Bucket and Key."""
    names = [name.strip() for name in columns.split(",")]
    positions: dict[str, int] = {n: names.index(n) for n in ("Bucket", "Key", "Size", "ETag") if n in names}
    if "Bucket" not in positions or "Key" not in positions:
        raise ApiError(
            400,
            "invalid_request",
            f"an S3 Inventory's columns (its manifest.json fileSchema) must name Bucket and Key, got {columns!r}",
        )
    return positions


def manifest_entries(lines: Iterable[str], *, manifest_format: str, columns: str, bucket: str) -> Iterator[Entry]:
    """The objects a manifest names: `keys`, one key per row (its first column; a `key` header is
    skipped), in Pixelake's bucket; or `inventory`, an S3 Inventory CSV (no header, URL-encoded keys)."""
    rows = csv.reader(lines)
    if manifest_format == "keys":
        for number, row in enumerate(rows):
            key = row[0].strip() if row else ""
            if key and not (number == 0 and key.lower() == "key"):
                yield Entry(bucket, key)
        return
    positions = inventory_columns(columns)
    for number, row in enumerate(rows, 1):
        if not row:
            continue
        if len(row) <= max(positions.values()):
            raise ValueError(f"manifest line {number} has {len(row)} columns; the inventory's columns are {columns!r}")
        size = row[positions["Size"]] if "Size" in positions else ""
        yield Entry(
            row[positions["Bucket"]],
            unquote_plus(row[positions["Key"]]),
            int(size) if size else None,
            row[positions["ETag"]] or None if "ETag" in positions else None,
        )


def _manifest_lines(key: str) -> Iterator[str]:
    """The manifest's lines, read as a stream (gzip when the key ends in .gz, as S3 Inventory writes)."""
    body = storage.stream(key)
    try:
        raw = gzip.GzipFile(fileobj=body) if key.endswith(".gz") else body
        yield from io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
    finally:
        body.close()


def source_entries(source: dict[str, Any]) -> Iterator[Entry]:
    """Every object of the import's source, in a stable order (a restarted driver lists the same partitions)."""
    bucket = get_settings().bucket
    if "prefix" in source:
        for item in storage.objects_under(source["prefix"]):
            if not item["Key"].endswith("/"):  # a console "folder"
                yield Entry(bucket, item["Key"], int(item["Size"]), item.get("ETag"))
        return
    yield from manifest_entries(
        _manifest_lines(source["manifest_key"]),
        manifest_format=source.get("format", "keys"),
        columns=source.get("columns", INVENTORY_COLUMNS),
        bucket=bucket,
    )


def partitions_of(entries: Iterable[Entry], size: int) -> Iterator[list[Entry]]:
    chunk: list[Entry] = []
    for entry in entries:
        chunk.append(entry)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# --- the work: on Dask ------------------------------------------------------------------------


def resolve_entry(entry: Entry, *, owner_id: int, import_id: int) -> UploadedObject | str:
    """The object to ingest for the import (its size and ETag read when the source did not say
    them), or why it cannot be imported."""
    from chalicelib.services.ingest import UploadedObject

    settings = get_settings()
    if not storage.in_user_area(owner_id, entry.key):
        return f"outside your storage: import keys under {list(storage.user_areas(owner_id))}"
    if entry.bucket != settings.bucket:
        return f"the object is in bucket {entry.bucket!r}; Pixelake imports from {settings.bucket!r}"
    size, etag = entry.size, entry.etag
    if size is None:
        head = storage.head(entry.key)
        if head is None:
            return "no such object"
        size, etag = int(head["ContentLength"]), head.get("ETag")
    return UploadedObject(entry.bucket, entry.key, size, etag.strip('"') if etag else None, owner_id, import_id)


def register_within_quota(objects: list[UploadedObject], *, owner_id: int, import_id: int) -> dict[str, str]:
    """Register the objects that have no image yet as the import's pending images, each while it
    fits in the owner's storage quota against the bytes stored now (the user's row locked: one
    registration at a time); the keys refused, with the reason. A retried partition charges
    nothing twice: an object registered before has its image, and is not counted again."""
    from chalicelib.db import direct
    from chalicelib.services.quota import import_refusals

    if not objects:
        return {}
    with direct.transaction() as db:
        storage_state = direct.storage_locked(db, owner_id, default_quota=get_settings().user_quota_bytes)
        if storage_state is None or not storage_state[1]:  # no such user (the ingest says so), or no quota
            return {}
        used, quota = storage_state
        existing = direct.existing_image_keys(db, objects[0].bucket, [obj.key for obj in objects])
        new = [obj for obj in objects if obj.key not in existing]
        refused, fitting = {}, []
        for obj, refusal in zip(new, import_refusals(used, quota, [obj.size for obj in new]), strict=True):
            if refusal is None:
                fitting.append({"key": obj.key, "size_bytes": obj.size, "etag": obj.etag})
            else:
                refused[obj.key] = refusal
        direct.register_images(db, owner_id=owner_id, import_id=import_id, bucket=objects[0].bucket, rows=fitting)
    return refused


def import_entry(obj: UploadedObject, *, import_id: int) -> tuple[str, bool, str | None]:
    """Ingest one object for the import: (the counter it adds to: ready, failed or skipped;
    whether this import registered its image; the reason it failed)."""
    from chalicelib.services.ingest import ingest

    try:
        outcome = ingest(obj)
    except Exception as exc:  # transient (S3 or the database): the image was not written; a re-run retries it
        if getattr(exc, "response", {}).get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return "failed", False, "no such object (deleted after it was listed)"
        log.warning("could not ingest %s", obj.key, exc_info=True)
        return "failed", False, f"could not be ingested ({type(exc).__name__}: {exc}); importing again retries it"
    mine = outcome.import_id == import_id
    if outcome.reason == "duplicate" and not mine:
        return "skipped", False, None
    if outcome.status == "ready":
        return "ready", mine, None
    return "failed", mine, outcome.error or outcome.reason


def import_partition(import_id: int, owner_id: int, number: int, entries: list[Entry]) -> dict[str, int]:
    """Ingest one partition's objects and add their counts to the import (once: a retried
    partition, or one counted before the driver restarted, adds nothing). The objects are
    registered first, within the owner's storage quota (register_within_quota)."""
    from chalicelib.db import direct, transitions
    from chalicelib.logs import log_context

    with direct.transaction() as db:
        if transitions.import_partition_is_counted(db, import_id, number):
            return {}
    counts = dict.fromkeys(transitions.IMPORT_COUNTERS, 0)
    failures = []
    resolved = [(entry, resolve_entry(entry, owner_id=owner_id, import_id=import_id)) for entry in entries]
    refused = register_within_quota(
        [obj for _, obj in resolved if not isinstance(obj, str)], owner_id=owner_id, import_id=import_id
    )
    reason: str | None
    for entry, obj in resolved:
        if isinstance(obj, str):
            counter, registered, reason = "failed", False, obj
        elif obj.key in refused:
            counter, registered, reason = "failed", False, refused[obj.key]
        else:
            with log_context(import_id=import_id):
                counter, registered, reason = import_entry(obj, import_id=import_id)
        counts[counter] += 1
        counts["registered"] += registered
        if reason is not None:
            failures.append({"key": entry.key, "reason": reason})
    with direct.transaction() as db:
        transitions.import_partition_counted(db, import_id, number, counts, failures)
    return counts


def run_import(import_id: int) -> str:
    """The driver, on a Dask worker: list, dispatch partitions, finish with the honest status (or
    stop submitting once the import is cancelled, and let the partitions in flight be counted)."""
    from distributed import worker_client

    from chalicelib.db import transitions
    from chalicelib.ml.distributed import describe_failure

    with session_scope() as session:
        spec = transitions.import_running(transitions.on_session(session), import_id)
    if spec is None:
        return "skipped"
    error = None
    try:
        with worker_client() as client:
            _dispatch(client, import_id, spec)
    except Exception as exc:  # the listing, the manifest or a partition that could not run: the import says why
        log.exception("import %s failed", import_id)
        error = describe_failure(exc)
    with session_scope() as session:
        return transitions.import_finished(transitions.on_session(session), import_id, error=error)


def _dispatch(client: Client, import_id: int, spec: dict) -> None:
    from distributed import wait
    from sqlalchemy import select

    from chalicelib.db import direct, transitions
    from chalicelib.db.tables import ImportPartition

    with session_scope() as session:  # a restarted driver: the partitions counted before
        counted = set(session.scalars(select(ImportPartition.number).where(ImportPartition.import_id == import_id)))
    threads = sum(w.get("nthreads", 1) for w in client.scheduler_info(n_workers=-1)["workers"].values())
    limit = max(2, IN_FLIGHT_PER_THREAD * threads)
    in_flight: list = []
    listed = partitions = 0

    def record(done: bool = False) -> None:
        with session_scope() as session:
            transitions.import_listed(
                transitions.on_session(session), import_id, listed=listed, partitions=partitions, done=done
            )

    def settle(finished) -> None:
        for future in finished:
            future.result()  # a partition that failed after its retries fails the import, with the reason

    def cancelled() -> bool:
        with direct.transaction() as db:
            return transitions.import_status(db, import_id) != "running"

    for number, chunk in enumerate(partitions_of(source_entries(spec["source"]), get_settings().import_partition_keys)):
        if cancelled():  # between partitions: a cancel (or a finish elsewhere) stops the submissions
            log.info("import %s: cancelled; the %d partitions in flight finish", import_id, len(in_flight))
            settle(wait(in_flight).done)
            record()
            return
        listed, partitions = listed + len(chunk), number + 1
        if number in counted:
            continue
        in_flight.append(
            client.submit(
                import_partition,
                import_id,
                spec["owner_id"],
                number,
                chunk,
                key=f"import-{import_id}-partition-{number}",
                pure=False,
                retries=2,
            )
        )
        if len(in_flight) >= limit:
            done, pending = wait(in_flight, return_when="FIRST_COMPLETED")
            settle(done)
            in_flight = list(pending)
            record()
    record(done=True)
    settle(wait(in_flight).done)
