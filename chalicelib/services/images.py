"""Images: an upload through the API, a presigned direct upload to S3, the caller's images and
their near-duplicates by perceptual hash.

Either way an upload becomes a `pending` row first; the S3 event then runs the ingest
(chalicelib/services/ingest.py), which makes it `ready` or `failed`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib import storage
from chalicelib.config import get_settings
from chalicelib.db.session import session_scope
from chalicelib.errors import ApiError, found
from chalicelib.imaging.imageio import (
    ACCEPTED_CONTENT_TYPES,
    ACCEPTED_NAMES,
    SNIFF_BYTES,
    describe_non_image,
    sniff_content_type,
)
from chalicelib.services.quota import enforce_upload_quota

if TYPE_CHECKING:
    from chalicelib.db.direct import ImageRow
    from chalicelib.db.tables import Image
    from chalicelib.services.identity import Principal

    # What the image views show: a mapped row, or the list's pg8000 row with the same attributes.
    type ShownImage = Image | ImageRow


@dataclass(frozen=True)
class UploadTicket:
    """A presigned POST for one image, bound to the size and type announced."""

    image_id: int
    url: str
    fields: dict[str, str]
    expires_in: int


def display_filename(name: str | None) -> str | None:
    """A filename safe to show: no directories, control characters or absurd length."""
    if not name:
        return None
    name = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = re.sub(r"[\x00-\x1f\x7f<>\"'`]", "", name).strip(" .")
    return name[:255] or None


def check_size(size: int) -> None:
    limit = get_settings().max_upload_bytes
    if size > limit:
        raise ApiError(413, "file_too_large", f"the file is {size:,} bytes; the limit is {limit:,} bytes")


def content_type_of(data: bytes) -> str:
    """The image type the bytes are (by their signature, not by what the client says), else a 415."""
    content_type = sniff_content_type(data[:SNIFF_BYTES])
    if content_type is None:
        what = describe_non_image(data)
        detail = f"the file is {what}" if what else "the file's content is not a supported image"
        raise ApiError(415, "unsupported_media_type", f"{detail} (accepted: {ACCEPTED_NAMES})")
    return content_type


def upload(principal: Principal, data: bytes, filename: str | None) -> Image:
    """Store the bytes under uploads/ and create their pending image (413, 415, 403 quota)."""
    from chalicelib.db import images as image_rows

    check_size(len(data))
    content_type = content_type_of(data)
    settings = get_settings()
    key = storage.new_upload_key(principal.user_id, content_type)
    with session_scope() as session:
        enforce_upload_quota(session, principal.user_id, len(data))
        image = image_rows.create_pending(
            session,
            owner_id=principal.user_id,
            bucket=settings.bucket,
            key=key,
            filename=display_filename(filename),
            content_type=content_type,
            size_bytes=len(data),
        )
        # The row is written in the same transaction as the upload: if S3 refuses, no row remains.
        # An S3 event that races ahead waits on this row's insert, then finds it.
        storage.put(key, data, content_type)
        session.refresh(image)  # the columns the database filled in (status, created_at), for the answer
    return image


def start_upload(principal: Principal, *, filename: str, content_type: str, size: int) -> UploadTicket:
    """A pending image and the presigned POST that uploads its file straight to S3 (415, 413, 403 quota)."""
    from chalicelib.db import images as image_rows

    media_type = content_type.split(";")[0].strip().lower()
    if media_type not in ACCEPTED_CONTENT_TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"content_type must be one of {sorted(ACCEPTED_CONTENT_TYPES)}, got {content_type!r}",
        )
    check_size(size)
    settings = get_settings()
    key = storage.new_upload_key(principal.user_id, media_type)
    with session_scope() as session:
        enforce_upload_quota(session, principal.user_id, size)
        image = image_rows.create_pending(
            session,
            owner_id=principal.user_id,
            bucket=settings.bucket,
            key=key,
            filename=display_filename(filename),
            content_type=media_type,
            size_bytes=size,
        )
        image_id = image.id
    # The signature binds the size announced: a larger file is refused by S3 (and re-checked on ingest).
    post = storage.presign_post(key, media_type, max_bytes=size)
    return UploadTicket(image_id=image_id, url=post["url"], fields=post["fields"], expires_in=settings.presign_expiry_s)


def page(principal: Principal, *, limit: int, before_id: int | None, status: str | None) -> list[ImageRow]:
    """The caller's images (an admin's: everyone's), newest first, at most `limit`.

    Through the driver alone (chalicelib/db/direct.py): a cold start's first request is often this one."""
    from chalicelib.db import direct

    return direct.images_page(
        direct.connection(), principal.owner_filter, limit=limit, before_id=before_id, status=status
    )


def get(principal: Principal, image_id: int) -> tuple[Image, dict[str, dict[str, Any]]]:
    """One of the caller's images (404 otherwise) and the newest result of each analysis run on it."""
    from chalicelib.db import images as image_rows
    from chalicelib.db import tasks as task_rows

    with session_scope() as session:
        image = found(image_rows.get_for_owner(session, image_id, principal.owner_filter), "image", image_id)
        return image, task_rows.latest_analyses(session, image_id)


def similar(principal: Principal, image_id: int, *, max_distance: int, limit: int) -> list[tuple[int, Image]]:
    """(Hamming distance, image) of the owner's images nearest to one of the caller's images by
    perceptual hash, nearest first: 404 when it is not the caller's, 409 while it has no hash."""
    from chalicelib.db import images as image_rows

    with session_scope() as session:
        image = found(image_rows.get_for_owner(session, image_id, principal.owner_filter), "image", image_id)
        if image.phash is None:
            raise ApiError(409, "image_not_ready", f"image {image_id} is {image.status}: it has no perceptual hash yet")
        neighbours = image_rows.similar(session, image, max_distance=max_distance, limit=limit)
        by_id = image_rows.by_ids(session, [n for n, _ in neighbours])
        return [(distance, by_id[n]) for n, distance in neighbours]


def similar_by_embedding(
    principal: Principal, image_id: int, *, model: str, limit: int
) -> tuple[dict, list[tuple[float, Image]]]:
    """(the embed model's name and version, [(cosine similarity, image)]) of the owner's images
    nearest to one of the caller's images by that model's embeddings (chalicelib/services/similarity.py)."""
    from chalicelib.db import images as image_rows
    from chalicelib.services.similarity import nearest_images

    with session_scope() as session:
        image = found(image_rows.get_for_owner(session, image_id, principal.owner_filter), "image", image_id)
        chosen, nearest = nearest_images(session, image, user_id=principal.user_id, model_name=model, limit=limit)
        by_id = image_rows.by_ids(session, [n for n, _ in nearest])
        return chosen, [(similarity, by_id[n]) for n, similarity in nearest]
