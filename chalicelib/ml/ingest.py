"""What every upload goes through: validate, decode once, describe, thumbnail, hash.

Pure: bytes in, an IngestOutcome out. The ingest handler does the S3 and database I/O.
The image is decoded once, at the smallest JPEG scale that still covers the largest
thumbnail; thumbnails, the perceptual hash and the default analyzers all use that decode.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

from chalicelib.ml import imageio

THUMBNAIL_QUALITY = 82
# EXIF orientations 5–8 are transposed: the stored image's width and height swap.
_TRANSPOSED_ORIENTATIONS = {5, 6, 7, 8}


@dataclass(frozen=True)
class Thumbnail:
    size: int
    width: int
    height: int
    data: bytes
    format: str = "jpeg"

    @property
    def content_type(self) -> str:
        return "image/jpeg"


@dataclass
class IngestOutcome:
    format: str
    content_type: str
    width: int
    height: int
    mode: str
    sha256: str
    phash: int
    metadata: dict[str, Any]
    thumbnails: list[Thumbnail]
    analyses: dict[str, tuple[dict, int]] = field(default_factory=dict)  # name → (data, duration ms)


def oriented_size(width: int, height: int, orientation: int | None) -> tuple[int, int]:
    return (height, width) if orientation in _TRANSPOSED_ORIENTATIONS else (width, height)


def make_thumbnails(img, sizes: tuple[int, ...]) -> list[Thumbnail]:
    """JPEG thumbnails, largest first, each resized from the previous one (less work per size)."""
    thumbnails = []
    source = img
    for size in sorted(set(sizes), reverse=True):
        thumb = imageio.fit_within(source, size)
        data = imageio.encode(thumb, "JPEG", THUMBNAIL_QUALITY)
        thumbnails.append(Thumbnail(size, thumb.width, thumb.height, data))
        source = thumb
    return thumbnails


def basic_metadata(img, info: imageio.ImageInfo, data: bytes) -> dict[str, Any]:
    """What ingest records in images.metadata: the file's facts and a safe EXIF summary."""
    from chalicelib.ml.exif import exif_summary

    return {
        "mode": info.mode,
        "frames": info.frames,
        "has_alpha": img.mode in ("RGBA", "LA"),
        "orientation": img.info.get("orientation"),
        "exif": exif_summary(data),  # from the file: decoding drops the Orientation tag
    }


def analyze_upload(data: bytes, *, max_pixels: int, max_frames: int, thumbnail_sizes: tuple[int, ...],
                   analyzers: tuple[str, ...] = ()) -> IngestOutcome:
    """Raises imageio.ImageRejected with a message for the user when the file is not acceptable."""
    from chalicelib.ml.phash import phash

    info = imageio.probe(data, max_pixels=max_pixels, max_frames=max_frames)
    img = imageio.decode(data, max_pixels=max_pixels, min_longest_side=max(thumbnail_sizes))
    metadata = basic_metadata(img, info, data)
    width, height = oriented_size(info.width, info.height, metadata["orientation"])
    outcome = IngestOutcome(
        format=info.format.lower(),
        content_type=info.content_type,
        width=width,
        height=height,
        mode=info.mode,
        sha256=hashlib.sha256(data).hexdigest(),
        phash=phash(img),
        metadata=metadata,
        thumbnails=make_thumbnails(img, thumbnail_sizes),
    )
    outcome.analyses = run_analyzers(img, data, analyzers, scale=width / img.width)
    return outcome


def scale_boxes(value: Any, factor: float) -> Any:
    """Boxes found on the reduced decode, in the stored image's pixels."""
    if isinstance(value, list):
        return [scale_boxes(v, factor) for v in value]
    if not isinstance(value, dict):
        return value
    scaled = {k: scale_boxes(v, factor) for k, v in value.items()}
    box = value.get("box")
    if isinstance(box, dict) and factor != 1:
        scaled["box"] = {k: round(v * factor) if k in ("x", "y", "width", "height") else v for k, v in box.items()}
    return scaled


def run_analyzers(img, data: bytes, names: tuple[str, ...], *, scale: float) -> dict[str, tuple[dict, int]]:
    """The default analyzers, on the decode ingest already made (no second decode)."""
    if not names:
        return {}
    from chalicelib.ml.analyzers import AnalysisInput, analyze

    source = AnalysisInput(data, pil=img)
    results = {}
    for name in names:
        started = time.perf_counter()
        output = analyze(name, source, {})
        results[name] = (scale_boxes(output.data, scale), round((time.perf_counter() - started) * 1000))
    return results
