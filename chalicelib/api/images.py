"""Images: upload through the API, presigned direct upload to S3, list and show."""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING, Annotated, Literal

import msgspec
from chalice import Blueprint
from msgspec import Meta

from chalicelib import storage
from chalicelib.api.multipart import MultipartError, parse_multipart
from chalicelib.api.routing import Cursor, created, cursor_id, paginated, parse_id, route
from chalicelib.config import get_settings
from chalicelib.db.session import session_scope
from chalicelib.db.vocabulary import BAND_GUARANTEED_DISTANCE, IMAGE_STATUSES
from chalicelib.errors import ApiError, found
from chalicelib.imaging.imageio import ACCEPTED_CONTENT_TYPES, describe_non_image, sniff_content_type
from chalicelib.services.identity import current_principal
from chalicelib.services.quota import enforce_upload_quota

if TYPE_CHECKING:
    from chalicelib.db.tables import Image

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


def display_filename(name: str | None) -> str | None:
    """A filename safe to show: no directories, control characters or absurd length."""
    if not name:
        return None
    name = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = re.sub(r"[\x00-\x1f\x7f<>\"'`]", "", name).strip(" .")
    return name[:255] or None


def image_json(image: Image) -> dict:
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


def _check_size(size: int) -> None:
    limit = get_settings().max_upload_bytes
    if size > limit:
        raise ApiError(413, "file_too_large", f"the file is {size:,} bytes; the limit is {limit:,} bytes")


def _content_type_of(data: bytes) -> str:
    content_type = sniff_content_type(data[:16])
    if content_type is None:
        what = describe_non_image(data)
        detail = f"the file is {what}" if what else "the file's content is not a supported image"
        raise ApiError(415, "unsupported_media_type", f"{detail} (accepted: JPEG, PNG, WebP, GIF, TIFF, BMP)")
    return content_type


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
)
def upload():
    from chalicelib.db import images as image_rows

    request = images_api.current_request
    try:
        parts = parse_multipart(request.raw_body or b"", request.headers.get("content-type", ""))
    except MultipartError as exc:
        raise ApiError(400, "invalid_multipart", str(exc)) from None
    part = parts.get("file")
    if part is None or not part.data:
        raise ApiError(
            400, "missing_file", "send the image as the multipart field 'file' (curl -F \"file=@image.jpg\")"
        )
    data = bytes(part.data)
    _check_size(len(data))
    content_type = _content_type_of(data)
    principal = current_principal(request)
    settings = get_settings()
    key = storage.new_upload_key(principal.user_id, content_type)
    with session_scope() as session:
        enforce_upload_quota(session, principal.user_id, len(data))
        image = image_rows.create_pending(
            session,
            owner_id=principal.user_id,
            bucket=settings.bucket,
            key=key,
            filename=display_filename(part.filename),
            content_type=content_type,
            size_bytes=len(data),
        )
        # The row is written in the same transaction as the upload: if S3 refuses, no row remains.
        # An S3 event that races ahead waits on this row's insert, then finds it.
        storage.put(key, data, content_type)
        session.flush()
        body = image_json(image)
    return created(body, f"/api/images/{body['id']}", status=202)


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
)
def presign_upload(body: PresignRequest):
    from chalicelib.db import images as image_rows

    content_type = body.content_type.split(";")[0].strip().lower()
    if content_type not in ACCEPTED_CONTENT_TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"content_type must be one of {sorted(ACCEPTED_CONTENT_TYPES)}, got {body.content_type!r}",
        )
    _check_size(body.size)
    principal = current_principal(images_api.current_request)
    settings = get_settings()
    key = storage.new_upload_key(principal.user_id, content_type)
    with session_scope() as session:
        enforce_upload_quota(session, principal.user_id, body.size)
        image = image_rows.create_pending(
            session,
            owner_id=principal.user_id,
            bucket=settings.bucket,
            key=key,
            filename=display_filename(body.filename),
            content_type=content_type,
            size_bytes=body.size,
        )
        session.flush()
        image_id = image.id
    # The signature binds the size announced: a larger file is refused by S3 (and re-checked on ingest).
    post = storage.presign_post(key, content_type, max_bytes=body.size)
    return created(
        {"image_id": image_id, "url": post["url"], "fields": post["fields"], "expires_in": settings.presign_expiry_s},
        f"/api/images/{image_id}",
    )


@route(
    images_api,
    "/api/images",
    methods=["GET"],
    query=ImageListQuery,
    tag="images",
    summary="List images, newest first (cursor pagination)",
)
def list_images(query: ImageListQuery):
    from chalicelib.db import images as image_rows

    principal = current_principal(images_api.current_request)
    with session_scope() as session:
        rows = image_rows.list_for_owner(
            session,
            principal.owner_filter,
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
)
def get_image(image_id: str):
    from chalicelib.db import images as image_rows
    from chalicelib.db import tasks as task_rows

    image_id = parse_id(image_id, "image")
    principal = current_principal(images_api.current_request)
    with session_scope() as session:
        image = found(image_rows.get_for_owner(session, image_id, principal.owner_filter), "image", image_id)
        return {**image_json(image), "analyses": task_rows.latest_analyses(session, image_id)}


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
)
def similar_images(image_id: str, query: SimilarQuery):
    from sqlalchemy import select

    from chalicelib.db import images as image_rows
    from chalicelib.db.tables import Image

    image_id = parse_id(image_id, "image")
    principal = current_principal(images_api.current_request)
    with session_scope() as session:
        image = found(image_rows.get_for_owner(session, image_id, principal.owner_filter), "image", image_id)
        if query.model is not None:
            from chalicelib.services.similarity import nearest_images

            model, nearest = nearest_images(
                session, image, user_id=principal.user_id, model_name=query.model, limit=query.limit
            )
            by_id = {i.id: i for i in session.scalars(select(Image).where(Image.id.in_([n for n, _ in nearest])))}
            items = [{"similarity": round(s, 6), "image": image_json(by_id[n])} for n, s in nearest]
            return {"image_id": image_id, "model": model, "items": items}
        if image.phash is None:
            raise ApiError(409, "image_not_ready", f"image {image_id} is {image.status}: it has no perceptual hash yet")
        neighbours = image_rows.similar(session, image, max_distance=query.max_distance, limit=query.limit)
        by_id = {i.id: i for i in session.scalars(select(Image).where(Image.id.in_([n for n, _ in neighbours])))}
        items = [{"distance": distance, "image": image_json(by_id[n])} for n, distance in neighbours]
    return {"image_id": image_id, "max_distance": query.max_distance, "items": items}
