"""Datasets: labelled images for training, from an S3 prefix (one folder per label), a CSV
manifest (`key,label`) or the caller's image ids with labels."""

from __future__ import annotations

import csv
import io
import re
from typing import TYPE_CHECKING, Annotated

import msgspec
from chalice import Blueprint, Response
from msgspec import Meta

from chalicelib import storage
from chalicelib.api import responses
from chalicelib.api.routing import PageQuery, created, cursor_id, paginated, parse_id, route
from chalicelib.config import get_settings
from chalicelib.db.session import session_scope
from chalicelib.errors import ApiError, found
from chalicelib.imaging.imageio import ACCEPTED_CONTENT_TYPES
from chalicelib.services.access import check_readable
from chalicelib.services.identity import Principal, current_principal

if TYPE_CHECKING:
    from chalicelib.db.tables import Dataset

datasets_api = Blueprint(__name__)

NAME = r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,99}$"
LABEL = re.compile(r"^[^\x00-\x1f/\\]{1,200}$")
SAFE_PATH = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+){0,9}$")


class LabelledImage(msgspec.Struct, forbid_unknown_fields=True):
    image_id: Annotated[int, Meta(ge=1)]
    label: Annotated[str, Meta(min_length=1, max_length=200)]


class CreateDataset(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, Meta(pattern=NAME)]
    description: Annotated[str, Meta(max_length=2000)] | None = None
    prefix: Annotated[str, Meta(min_length=1, max_length=1000)] | None = None
    manifest: Annotated[str, Meta(max_length=5_000_000)] | None = None
    manifest_key: Annotated[str, Meta(max_length=1000)] | None = None
    items: Annotated[list[LabelledImage], Meta(max_length=100_000)] | None = None


class DatasetUpload(msgspec.Struct, forbid_unknown_fields=True):
    path: Annotated[str, Meta(min_length=1, max_length=500)]
    content_type: Annotated[str, Meta(max_length=100)]
    size: Annotated[int, Meta(ge=1)]


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


def dataset_json(dataset: Dataset, counts: dict[str, int]) -> dict:
    return {
        "id": dataset.id,
        "name": dataset.name,
        "description": dataset.description,
        "source": dataset.source,
        "item_count": sum(counts.values()),
        "label_counts": counts,
        "created_at": dataset.created_at,
    }


def _labelled_items(
    body: CreateDataset, principal: Principal, session
) -> tuple[dict, list[tuple[str, str, int | None]]]:
    from chalicelib.db import datasets as dataset_rows
    from chalicelib.db import images as image_rows

    sources = [s for s in ("prefix", "manifest", "manifest_key", "items") if getattr(body, s) is not None]
    if len(sources) != 1:
        raise ApiError(400, "invalid_request", "give exactly one of 'prefix', 'manifest', 'manifest_key' or 'items'")
    bucket = get_settings().bucket
    if body.items is not None:
        items = []
        for item in body.items:
            image = found(
                image_rows.get_for_owner(session, item.image_id, principal.owner_filter), "image", item.image_id
            )
            items.append((image.key, item.label, image.id))
        return {"type": "images"}, items
    if body.prefix is not None:
        check_readable(principal, body.prefix)
        pairs, source = items_from_prefix(body.prefix), {"type": "prefix", "prefix": body.prefix}
    elif body.manifest_key is not None:
        check_readable(principal, body.manifest_key)
        text = storage.get(body.manifest_key).decode("utf-8", "replace")
        pairs, source = items_from_manifest(text, principal), {"type": "manifest", "key": body.manifest_key}
    else:
        assert body.manifest is not None  # the one source given (checked above)
        pairs, source = items_from_manifest(body.manifest, principal), {"type": "manifest"}
    ids = dataset_rows.image_ids_by_key(session, bucket, [key for key, _ in pairs])
    return source, [(key, label, ids.get(key)) for key, label in pairs]


@route(
    datasets_api,
    "/api/datasets",
    methods=["POST"],
    body=CreateDataset,
    tag="datasets",
    summary="Create a dataset from an S3 prefix (ImageFolder), a CSV manifest, or image ids with labels",
    responses={
        201: "the dataset with label counts",
        400: "invalid source",
        403: "prefix outside your storage",
        409: "name taken",
    },
    response={201: responses.Dataset},
)
def create_dataset(body: CreateDataset):
    from chalicelib.db import datasets as dataset_rows

    principal = current_principal(datasets_api.current_request)
    with session_scope() as session:
        if dataset_rows.name_taken(session, principal.user_id, body.name):
            raise ApiError(409, "name_taken", f"you already have a dataset named {body.name!r}")
        source, items = _labelled_items(body, principal, session)
        if not items:
            raise ApiError(400, "empty_dataset", "the source names no items")
        dataset = dataset_rows.create(
            session,
            owner_id=principal.user_id,
            name=body.name,
            description=body.description,
            source=source,
            items=items,
        )
        body_json = dataset_json(dataset, dataset_rows.label_counts(session, dataset.id))
    return created(body_json, f"/api/datasets/{body_json['id']}")


@route(
    datasets_api,
    "/api/datasets/uploads",
    methods=["POST"],
    body=DatasetUpload,
    tag="datasets",
    summary="Presigned POST for a dataset file at datasets/<you>/<path> (e.g. digits/3/img-001.png)",
    responses={201: "url and fields", 400: "bad path", 415: "not an image type"},
    response={201: responses.DatasetUploadTicket},
)
def presign_dataset_upload(body: DatasetUpload):
    if not SAFE_PATH.match(body.path) or any(part in (".", "..") for part in body.path.split("/")):
        raise ApiError(
            400,
            "invalid_path",
            "path must be folders and a file name of letters, digits, '.', '_', '-' (no '.' or '..' parts)",
        )
    if body.content_type not in ACCEPTED_CONTENT_TYPES:
        raise ApiError(415, "unsupported_media_type", f"content_type must be one of {sorted(ACCEPTED_CONTENT_TYPES)}")
    if body.size > get_settings().max_upload_bytes:
        raise ApiError(413, "file_too_large", f"the limit is {get_settings().max_upload_bytes:,} bytes")
    principal = current_principal(datasets_api.current_request)
    key = storage.dataset_key(principal.user_id, body.path)
    post = storage.presign_post(key, body.content_type, max_bytes=body.size)
    return created({"key": key, "url": post["url"], "fields": post["fields"]}, "/api/datasets")


@route(
    datasets_api,
    "/api/datasets",
    methods=["GET"],
    query=PageQuery,
    tag="datasets",
    summary="Your datasets",
    response=responses.DatasetPage,
)
def list_datasets(query: PageQuery):
    from chalicelib.db import datasets as dataset_rows

    principal = current_principal(datasets_api.current_request)
    with session_scope() as session:
        rows = dataset_rows.list_for_owner(
            session, principal.owner_filter, limit=query.limit + 1, before_id=cursor_id(query.cursor)
        )
        return paginated(rows, query.limit, lambda d: dataset_json(d, dataset_rows.label_counts(session, d.id)))


@route(
    datasets_api,
    "/api/datasets/{dataset_id}",
    methods=["GET"],
    tag="datasets",
    summary="One dataset with its label counts",
    responses={404: "no such dataset"},
    response=responses.Dataset,
)
def get_dataset(dataset_id: str):
    from chalicelib.db import datasets as dataset_rows

    wanted_id = parse_id(dataset_id, "dataset")
    principal = current_principal(datasets_api.current_request)
    with session_scope() as session:
        dataset = found(dataset_rows.get_for_owner(session, wanted_id, principal.owner_filter), "dataset", wanted_id)
        return dataset_json(dataset, dataset_rows.label_counts(session, wanted_id))


@route(
    datasets_api,
    "/api/datasets/{dataset_id}",
    methods=["DELETE"],
    tag="datasets",
    summary="Delete a dataset (its items; the images and S3 objects stay)",
    responses={404: "no such dataset", 409: "training jobs used it"},
    response={204: None},
)
def delete_dataset(dataset_id: str):
    from chalicelib.db import datasets as dataset_rows

    wanted_id = parse_id(dataset_id, "dataset")
    principal = current_principal(datasets_api.current_request)
    with session_scope() as session:
        dataset = found(dataset_rows.get_for_owner(session, wanted_id, principal.owner_filter), "dataset", wanted_id)
        jobs = dataset_rows.training_job_ids(session, wanted_id)
        if jobs:  # deleting would cascade to their history and metrics
            raise ApiError(
                409,
                "dataset_in_use",
                f"training jobs {jobs[:10]} were trained on dataset {wanted_id}; "
                "it is kept so their history stays complete",
            )
        dataset_rows.delete_dataset(session, dataset)
    return Response(body="", status_code=204)
