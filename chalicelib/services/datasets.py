"""Datasets: labelled images for training, from an S3 prefix (one folder per label), a CSV
manifest (`key,label`) or the caller's image ids with labels."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib import storage
from chalicelib.config import get_settings
from chalicelib.db.session import session_scope
from chalicelib.errors import ApiError, found
from chalicelib.imaging.imageio import ACCEPTED_CONTENT_TYPES
from chalicelib.services.access import check_readable

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from chalicelib.db.tables import Dataset
    from chalicelib.services.identity import Principal

LABEL = re.compile(r"^[^\x00-\x1f/\\]{1,200}$")
SAFE_PATH = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+){0,9}$")


@dataclass(frozen=True)
class DatasetSummary:
    dataset: Dataset
    label_counts: dict[str, int]


@dataclass(frozen=True)
class DatasetUploadTicket:
    """A presigned POST for one file at datasets/<user>/<path>."""

    key: str
    url: str
    fields: dict[str, str]


def items_from_prefix(prefix: str) -> list[tuple[str, str]]:
    """ImageFolder: every object <prefix><label>/<file> is an item labelled <label>."""
    prefix = prefix if prefix.endswith("/") else prefix + "/"
    limit = get_settings().max_dataset_items
    items = []
    pages = storage.s3_client().get_paginator("list_objects_v2").paginate(Bucket=get_settings().bucket, Prefix=prefix)
    for page in pages:
        for obj in page.get("Contents", []):
            parts = obj["Key"][len(prefix) :].split("/")
            if len(parts) == 2 and parts[1]:
                items.append((obj["Key"], parts[0]))
                if len(items) > limit:
                    raise ApiError(400, "dataset_too_large", f"more than {limit:,} items under {prefix!r}")
    return items


def items_from_manifest(text: str, principal: Principal) -> list[tuple[str, str]]:
    items = []
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or (number == 1 and [c.strip().lower() for c in row[:2]] == ["key", "label"]):
            continue
        if len(row) != 2 or not row[0].strip() or not LABEL.match(row[1].strip()):
            raise ApiError(400, "invalid_manifest", f"manifest line {number}: expected `key,label`, got {row!r}")
        key = row[0].strip()
        check_readable(principal, key)
        items.append((key, row[1].strip()))
        if len(items) > get_settings().max_dataset_items:
            raise ApiError(400, "dataset_too_large", f"more than {get_settings().max_dataset_items:,} items")
    return items


def _labelled_items(
    session: Session,
    principal: Principal,
    *,
    prefix: str | None,
    manifest: str | None,
    manifest_key: str | None,
    images: list[tuple[int, str]] | None,
) -> tuple[dict[str, Any], list[tuple[str, str, int | None]]]:
    """The dataset's source (as stored) and its (key, label, image id) items."""
    from chalicelib.db import datasets as dataset_rows
    from chalicelib.db import images as image_rows

    given = {"prefix": prefix, "manifest": manifest, "manifest_key": manifest_key, "items": images}
    if sum(value is not None for value in given.values()) != 1:
        raise ApiError(400, "invalid_request", "give exactly one of 'prefix', 'manifest', 'manifest_key' or 'items'")
    if images is not None:
        items: list[tuple[str, str, int | None]] = []
        for image_id, label in images:
            image = found(image_rows.get_for_owner(session, image_id, principal.owner_filter), "image", image_id)
            items.append((image.key, label, image.id))
        return {"type": "images"}, items
    source: dict[str, Any]
    if prefix is not None:
        check_readable(principal, prefix)
        pairs, source = items_from_prefix(prefix), {"type": "prefix", "prefix": prefix}
    elif manifest_key is not None:
        check_readable(principal, manifest_key)
        text = storage.get(manifest_key).decode("utf-8", "replace")
        pairs, source = items_from_manifest(text, principal), {"type": "manifest", "key": manifest_key}
    else:
        assert manifest is not None  # the one source given (checked above)
        pairs, source = items_from_manifest(manifest, principal), {"type": "manifest"}
    ids = dataset_rows.image_ids_by_key(session, get_settings().bucket, [key for key, _ in pairs])
    return source, [(key, label, ids.get(key)) for key, label in pairs]


def create(
    principal: Principal,
    *,
    name: str,
    description: str | None,
    prefix: str | None = None,
    manifest: str | None = None,
    manifest_key: str | None = None,
    images: list[tuple[int, str]] | None = None,
) -> DatasetSummary:
    """A dataset from exactly one source: an S3 prefix, a manifest (text or S3 key) or (image id, label)
    pairs. 409 when the caller has a dataset of that name, 400 for an empty or unreadable source."""
    from chalicelib.db import datasets as dataset_rows

    with session_scope() as session:
        if dataset_rows.name_taken(session, principal.user_id, name):
            raise ApiError(409, "name_taken", f"you already have a dataset named {name!r}")
        source, items = _labelled_items(
            session, principal, prefix=prefix, manifest=manifest, manifest_key=manifest_key, images=images
        )
        if not items:
            raise ApiError(400, "empty_dataset", "the source names no items")
        dataset = dataset_rows.create(
            session, owner_id=principal.user_id, name=name, description=description, source=source, items=items
        )
        counts = dataset_rows.label_counts(session, dataset.id)
        session.refresh(dataset)  # created_at, which the database filled in, for the answer
        return DatasetSummary(dataset, counts)


def start_upload(principal: Principal, *, path: str, content_type: str, size: int) -> DatasetUploadTicket:
    """A presigned POST for a file at datasets/<user>/<path> (400 bad path, 415 not an image type, 413)."""
    if not SAFE_PATH.match(path) or any(part in (".", "..") for part in path.split("/")):
        raise ApiError(
            400,
            "invalid_path",
            "path must be folders and a file name of letters, digits, '.', '_', '-' (no '.' or '..' parts)",
        )
    if content_type not in ACCEPTED_CONTENT_TYPES:
        raise ApiError(415, "unsupported_media_type", f"content_type must be one of {sorted(ACCEPTED_CONTENT_TYPES)}")
    if size > get_settings().max_upload_bytes:
        raise ApiError(413, "file_too_large", f"the limit is {get_settings().max_upload_bytes:,} bytes")
    key = storage.dataset_key(principal.user_id, path)
    post = storage.presign_post(key, content_type, max_bytes=size)
    return DatasetUploadTicket(key=key, url=post["url"], fields=post["fields"])


def page(principal: Principal, *, limit: int, before_id: int | None) -> list[DatasetSummary]:
    """The caller's datasets (an admin's: everyone's) with their label counts, newest first."""
    from chalicelib.db import datasets as dataset_rows

    with session_scope() as session:
        rows = dataset_rows.list_for_owner(session, principal.owner_filter, limit=limit, before_id=before_id)
        return [DatasetSummary(d, dataset_rows.label_counts(session, d.id)) for d in rows]


def get(principal: Principal, dataset_id: int) -> DatasetSummary:
    from chalicelib.db import datasets as dataset_rows

    with session_scope() as session:
        dataset = found(dataset_rows.get_for_owner(session, dataset_id, principal.owner_filter), "dataset", dataset_id)
        return DatasetSummary(dataset, dataset_rows.label_counts(session, dataset_id))


def delete(principal: Principal, dataset_id: int) -> None:
    """Delete one of the caller's datasets (its items; the images and S3 objects stay); 409 while
    training jobs name it."""
    from chalicelib.db import datasets as dataset_rows

    with session_scope() as session:
        dataset = found(dataset_rows.get_for_owner(session, dataset_id, principal.owner_filter), "dataset", dataset_id)
        jobs = dataset_rows.training_job_ids(session, dataset_id)
        if jobs:  # deleting would cascade to their history and metrics
            raise ApiError(
                409,
                "dataset_in_use",
                f"training jobs {jobs[:10]} were trained on dataset {dataset_id}; "
                "it is kept so their history stays complete",
            )
        dataset_rows.delete_dataset(session, dataset)
