"""Datasets: labelled images for training, from an S3 prefix (one folder per label), a CSV
manifest (`key,label`) or the caller's image ids with labels.

The logic is in chalicelib/services/datasets.py; these views read the request and shape the answer.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from chalice import Blueprint, Response
from msgspec import Meta

from chalicelib.api import responses
from chalicelib.api.routing import PageQuery, created, cursor_id, paginated, parse_id, route
from chalicelib.services import datasets as dataset_service
from chalicelib.services.datasets import DatasetSummary
from chalicelib.services.identity import current_principal

datasets_api = Blueprint(__name__)

NAME = r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,99}$"


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


def dataset_json(summary: DatasetSummary) -> dict:
    dataset, counts = summary.dataset, summary.label_counts
    return {
        "id": dataset.id,
        "name": dataset.name,
        "description": dataset.description,
        "source": dataset.source,
        "item_count": sum(counts.values()),
        "label_counts": counts,
        "created_at": dataset.created_at,
    }


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
    summary = dataset_service.create(
        current_principal(datasets_api.current_request),
        name=body.name,
        description=body.description,
        prefix=body.prefix,
        manifest=body.manifest,
        manifest_key=body.manifest_key,
        images=None if body.items is None else [(item.image_id, item.label) for item in body.items],
    )
    return created(dataset_json(summary), f"/api/datasets/{summary.dataset.id}")


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
    ticket = dataset_service.start_upload(
        current_principal(datasets_api.current_request), path=body.path, content_type=body.content_type, size=body.size
    )
    return created({"key": ticket.key, "url": ticket.url, "fields": ticket.fields}, "/api/datasets")


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
    rows = dataset_service.page(
        current_principal(datasets_api.current_request), limit=query.limit + 1, before_id=cursor_id(query.cursor)
    )
    return paginated(rows, query.limit, dataset_json)


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
    return dataset_json(
        dataset_service.get(current_principal(datasets_api.current_request), parse_id(dataset_id, "dataset"))
    )


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
    dataset_service.delete(current_principal(datasets_api.current_request), parse_id(dataset_id, "dataset"))
    return Response(body="", status_code=204)
