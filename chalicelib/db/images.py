"""Image rows: created on upload (or when an object appears under uploads/); the ingest writes them through chalicelib/db/direct.py."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from chalicelib.db import owned
from chalicelib.db.tables import Image
from chalicelib.db.vocabulary import BAND_GUARANTEED_DISTANCE, PHASH_BANDS


def create_pending(
    session: Session,
    *,
    owner_id: int,
    bucket: str,
    key: str,
    filename: str | None,
    content_type: str | None,
    size_bytes: int | None,
) -> Image:
    image = Image(
        owner_id=owner_id,
        bucket=bucket,
        key=key,
        filename=filename,
        content_type=content_type,
        size_bytes=size_bytes,
        status="pending",
    )
    session.add(image)
    session.flush()
    return image


def get_for_owner(session: Session, image_id: int, owner_id: int | None) -> Image | None:
    """The image if it exists and belongs to owner_id (None: an admin, any owner)."""
    return owned.get(session, Image, image_id, owner_id)


def by_ids(session: Session, image_ids: list[int]) -> dict[int, Image]:
    """The images with these ids, by id (no owner filter: the caller chose the ids)."""
    return {image.id: image for image in session.scalars(select(Image).where(Image.id.in_(image_ids)))}


# The phash is banded for the near-duplicate search (chalicelib.db.vocabulary says why).
def phash_band(value: int, band: int) -> int:
    return (value >> (8 * band)) & 255


def similar_query(image: Image, *, max_distance: int, limit: int) -> tuple[str, dict]:
    """The SQL and parameters of the near-duplicate search (separate so its plan can be inspected)."""
    if image.phash is None:
        raise ValueError(f"image {image.id} has no perceptual hash: it is not ready")
    bands = " OR ".join(f"((phash >> {8 * b}) & 255) = :b{b}" for b in range(PHASH_BANDS))
    # Beyond the banded guarantee every hash must be compared: the owner's images, scanned.
    candidates = f"AND ({bands})" if max_distance <= BAND_GUARANTEED_DISTANCE else ""
    sql = f"""
        SELECT id, bit_count((phash # :q)::bit(64)) AS distance FROM images
        WHERE owner_id = :owner AND phash IS NOT NULL AND id <> :id {candidates}
          AND bit_count((phash # :q)::bit(64)) <= :max_distance
        ORDER BY distance, id LIMIT :limit"""
    params = {
        "q": image.phash,
        "owner": image.owner_id,
        "id": image.id,
        "max_distance": max_distance,
        "limit": limit,
        **{f"b{b}": phash_band(image.phash, b) for b in range(PHASH_BANDS)},
    }
    return sql, params


def similar(session: Session, image: Image, *, max_distance: int, limit: int) -> list[tuple[int, int]]:
    """(image id, Hamming distance) of the owner's images nearest to `image`'s phash, nearest first."""
    from sqlalchemy import text

    sql, params = similar_query(image, max_distance=max_distance, limit=limit)
    return [(row.id, row.distance) for row in session.execute(text(sql), params)]
