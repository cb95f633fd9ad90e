"""Images: upload through the API, presigned direct upload to S3, list and show.

The logic is in chalicelib/services/images.py; these views read the request and shape the answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

import msgspec
from chalice import Blueprint
from msgspec import Meta

from chalicelib import storage
from chalicelib.api import responses
from chalicelib.api.multipart import MultipartError, parse_multipart, request_bytes
from chalicelib.api.routing import Cursor, created, cursor_id, paginated, parse_id, route
from chalicelib.db.vocabulary import BAND_GUARANTEED_DISTANCE, IMAGE_STATUSES
from chalicelib.errors import ApiError
from chalicelib.services import images as image_service
from chalicelib.services.identity import current_principal

if TYPE_CHECKING:
    from chalicelib.services.images import ShownImage

images_api = Blueprint(__name__)

MAX_PAGE = 100


class PresignRequest(msgspec.Struct, forbid_unknown_fields=True):
    filename: Annotated[str, Meta(min_length=1, max_length=1024)]
    content_type: Annotated[str, Meta(max_length=100)]
    size: Annotated[int, Meta(ge=1)]


class ImageListQuery(msgspec.Struct, forbid_unknown_fields=True):
    limit: Annotated[int, Meta(ge=1, le=MAX_PAGE)] = 20
    cursor: Cursor | None = None
    status: Literal[IMAGE_STATUSES] | None = None  # type: ignore[valid-type]


class SimilarQuery(msgspec.Struct, forbid_unknown_fields=True):
    max_distance: Annotated[int, Meta(ge=0, le=24)] = BAND_GUARANTEED_DISTANCE
    limit: Annotated[int, Meta(ge=1, le=MAX_PAGE)] = 20
    # With a model: nearest by the cosine of that embed model's vectors instead of by phash.
    model: Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$")] | None = None


def image_json(image: ShownImage) -> dict:
    return {
        "id": image.id,
        "status": image.status,
        "error": image.error,
        "filename": image.filename,
        "content_type": image.content_type,
        "format": image.format,
        "width": image.width,
        "height": image.height,
        "size_bytes": image.size_bytes,
        "sha256": image.sha256,
        "phash": None if image.phash is None else format(image.phash & 0xFFFFFFFFFFFFFFFF, "016x"),
        "metadata": image.metadata_,
        "thumbnails": [
            {
                **{k: t[k] for k in ("width", "height", "format")},
                "url": storage.presign_get(t["key"], bucket=image.bucket),
            }
            for t in image.thumbnails
        ],
        "created_at": image.created_at,
        "processed_at": image.processed_at,
    }


@route(
    images_api,
    "/api/upload",
    methods=["POST"],
    content_types=["multipart/form-data"],
    tag="images",
    summary="Upload an image (multipart field `file`); it is processed asynchronously",
    responses={
        202: "the image, status pending",
        400: "no file",
        403: "storage quota exceeded",
        413: "too large",
        415: "not an image",
    },
    response={202: responses.Image},
)
def upload():
    request = images_api.current_request
    try:
        parts = parse_multipart(request_bytes(request), request.headers.get("content-type", ""))
    except MultipartError as exc:
        raise ApiError(400, "invalid_multipart", str(exc)) from None
    part = parts.get("file")
    if part is None or not part.data:
        raise ApiError(
            400, "missing_file", "send the image as the multipart field 'file' (curl -F \"file=@image.jpg\")"
        )
    image = image_service.upload(current_principal(request), bytes(part.data), part.filename)
    return created(image_json(image), f"/api/images/{image.id}", status=202)


@route(
    images_api,
    "/api/uploads",
    methods=["POST"],
    body=PresignRequest,
    tag="images",
    summary="Start a direct upload to S3: returns a presigned POST limited in size and type",
    responses={
        201: "url and fields for the POST",
        400: "bad request",
        403: "storage quota exceeded",
        413: "too large",
        415: "not an image type",
    },
    response={201: responses.ImageUploadTicket},
)
def presign_upload(body: PresignRequest):
    ticket = image_service.start_upload(
        current_principal(images_api.current_request),
        filename=body.filename,
        content_type=body.content_type,
        size=body.size,
    )
    return created(
        {"image_id": ticket.image_id, "url": ticket.url, "fields": ticket.fields, "expires_in": ticket.expires_in},
        f"/api/images/{ticket.image_id}",
    )


@route(
    images_api,
    "/api/images",
    methods=["GET"],
    query=ImageListQuery,
    tag="images",
    summary="List images, newest first (cursor pagination)",
    response=responses.ImagePage,
)
def list_images(query: ImageListQuery):
    rows = image_service.page(
        current_principal(images_api.current_request),
        limit=query.limit + 1,
        before_id=cursor_id(query.cursor),
        status=query.status,
    )
    return paginated(rows, query.limit, image_json)


@route(
    images_api,
    "/api/images/{image_id}",
    methods=["GET"],
    tag="images",
    summary="One image with its thumbnails",
    responses={404: "no such image"},
    response=responses.ImageDetail,
)
def get_image(image_id: str):
    image, analyses = image_service.get(current_principal(images_api.current_request), parse_id(image_id, "image"))
    return {**image_json(image), "analyses": analyses}


@route(
    images_api,
    "/api/images/{image_id}/similar",
    methods=["GET"],
    query=SimilarQuery,
    tag="images",
    summary="Images like this one among yours, nearest first: near-duplicates by Hamming distance of perceptual "
    "hashes, or with `model` (a registered embed model) by cosine similarity of its embeddings",
    responses={
        400: "the model does not embed",
        404: "no such image or model",
        409: "the image has no hash yet, or no embedding from the model",
    },
    response=responses.SimilarImages,
)
def similar_images(image_id: str, query: SimilarQuery):
    wanted_id = parse_id(image_id, "image")
    principal = current_principal(images_api.current_request)
    if query.model is not None:
        model, nearest = image_service.similar_by_embedding(principal, wanted_id, model=query.model, limit=query.limit)
        items = [{"similarity": round(similarity, 6), "image": image_json(image)} for similarity, image in nearest]
        return {"image_id": wanted_id, "model": model, "items": items}
    neighbours = image_service.similar(principal, wanted_id, max_distance=query.max_distance, limit=query.limit)
    items = [{"distance": distance, "image": image_json(image)} for distance, image in neighbours]
    return {"image_id": wanted_id, "max_distance": query.max_distance, "items": items}
