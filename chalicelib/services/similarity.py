"""Content similarity: the images nearest to one image by the cosine of their embeddings.

An `embed` model's run stores a vector per image (chalicelib.db.embeddings); this answers
GET /api/images/{id}/similar?model=NAME from those vectors, among the caller's images only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.errors import ApiError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from chalicelib.db.tables import Image


def nearest_images(
    session: Session, image: Image, *, user_id: int, model_name: str, limit: int
) -> tuple[dict, list[tuple[int, float]]]:
    """(the model's name and version, [(image id, similarity)] nearest first) for an image the caller may read.

    The model is the caller's active version of `model_name` (404 when none, 400 when it does
    not embed); the image must have been embedded by it (409 with how to do so).
    """
    from chalicelib.db import embeddings
    from chalicelib.db import ml_models as model_rows

    model = model_rows.resolve(session, user_id, model_name)
    if model is None:
        raise ApiError(404, "model_not_found", f"you have no active model named {model_name!r}")
    if model.task != "embed":
        raise ApiError(
            400, "wrong_model_task", f"model {model_name!r} is a {model.task} model; similarity needs an embed model"
        )
    stored = embeddings.vector_of(session, image.id, model.id)
    if stored is None:
        raise ApiError(
            409,
            "image_not_embedded",
            f"image {image.id} has no embedding from {model.name} v{model.version}: "
            f'POST /api/analyze {{"image_id": {image.id}, "model": "{model.name}"}} first (or a batch for many images)',
        )
    vector, norm = stored
    found = embeddings.nearest(
        session,
        model_id=model.id,
        owner_id=image.owner_id,
        vector=vector,
        norm=norm,
        exclude_image_id=image.id,
        limit=limit,
    )
    return {"name": model.name, "version": model.version}, found
