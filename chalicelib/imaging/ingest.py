"""What every upload goes through: validate, decode once, describe, thumbnail, hash.

Pure: bytes in, an IngestOutcome out. The ingest handler does the S3 and database I/O.

Where the time goes is measured by benchmarks/bench_suite.py (docs/benchmarks/report.md); the
pipeline does each piece of work once, at the smallest size that serves it:
- one decode, straight into a numpy array, at the smallest JPEG DCT scale (any M/8 of
  libjpeg-turbo's) that still covers the largest thumbnail and the analysis copy (a 12 MP photo
  decodes at 3/8, a 24 MP one at 1/4);
- copies largest first, each resized from the previous one (bilinear under 2×, area average
  beyond: imageio.shrink_array), then JPEG-encoded;
- the default analyzers look at one analysis copy of ANALYSIS_SIDE pixels (the 1024 px
  thumbnail when there is one), never at the full decode, and so does the perceptual hash.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chalicelib.imaging import imageio

if TYPE_CHECKING:
    import numpy as np

THUMBNAIL_QUALITY = 82
# Longest side of the copy the default analyzers and the perceptual hash look at.
ANALYSIS_SIDE = 1024
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


def scaled_copies(pixels: np.ndarray, sides) -> dict[int, np.ndarray]:
    """side → a copy no larger than side, largest first, each resized from the previous one."""
    copies = {}
    source = pixels
    for side in sorted(set(sides), reverse=True):
        source = imageio.shrink_array(source, side)
        copies[side] = source
    return copies


def make_thumbnails(data: bytes, sizes: tuple[int, ...], *, max_pixels: int) -> list[Thumbnail]:
    """JPEG thumbnails of an image file, largest first: one reduced decode, each size from the previous."""
    pixels = imageio.decode_array(data, max_pixels=max_pixels, min_longest_side=max(sizes)).pixels
    return encode_thumbnails(scaled_copies(pixels, sizes))


def encode_thumbnails(copies: dict[int, np.ndarray]) -> list[Thumbnail]:
    thumbnails = []
    for size, pixels in copies.items():
        height, width = pixels.shape[:2]
        data = imageio.encode(imageio.from_array(pixels), "JPEG", THUMBNAIL_QUALITY)
        thumbnails.append(Thumbnail(size, width, height, data))
    return thumbnails


def basic_metadata(pixels: np.ndarray, orientation: int | None, info: imageio.ImageInfo, data: bytes) -> dict[str, Any]:
    """What ingest records in images.metadata: the file's facts and a safe EXIF summary."""
    from chalicelib.imaging.exif import exif_summary

    return {
        "mode": info.mode,
        "frames": info.frames,
        "has_alpha": pixels.ndim == 3 and pixels.shape[2] == 4,
        "orientation": orientation,
        "exif": exif_summary(data),  # from the file: decoding drops the Orientation tag
    }


def analyze_upload(
    data: bytes, *, max_pixels: int, max_frames: int, thumbnail_sizes: tuple[int, ...], analyzers: tuple[str, ...] = ()
) -> IngestOutcome:
    """Raises imageio.ImageRejected with a message for the user when the file is not acceptable."""
    from chalicelib.imaging.phash import phash

    info = imageio.probe(data, max_pixels=max_pixels, max_frames=max_frames)
    pixels, orientation, colour_profile = imageio.decode_array(
        data, max_pixels=max_pixels, min_longest_side=max(*thumbnail_sizes, ANALYSIS_SIDE)
    )
    metadata = basic_metadata(pixels, orientation, info, data)
    if colour_profile:
        metadata["colour_profile"] = colour_profile
    width, height = oriented_size(info.width, info.height, orientation)
    copies = scaled_copies(pixels, (*thumbnail_sizes, ANALYSIS_SIDE))
    del pixels  # the decode is no longer needed (5 MB at 12 MP): let it go before the analyzers
    analysis_copy = copies[ANALYSIS_SIDE]
    analyses = run_analyzers(analysis_copy, data, analyzers, scale=width / analysis_copy.shape[1])
    # The `phash` analyzer (a default) hashes the same copy: its value is the image's hash.
    hashed = analyses.get("phash")
    return IngestOutcome(
        format=info.format.lower(),
        content_type=info.content_type,
        width=width,
        height=height,
        mode=info.mode,
        sha256=hashlib.sha256(data).hexdigest(),
        phash=hashed[0]["phash_int"] if hashed else phash(imageio.from_array(analysis_copy)),
        metadata=metadata,
        thumbnails=encode_thumbnails({size: copies[size] for size in sorted(set(thumbnail_sizes), reverse=True)}),
        analyses=analyses,
    )


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


def run_analyzers(
    pixels: np.ndarray, data: bytes, names: tuple[str, ...], *, scale: float
) -> dict[str, tuple[dict, int]]:
    """The default analyzers, on the analysis copy ingest already made (no second decode)."""
    if not names:
        return {}
    from chalicelib.imaging.analyzers import AnalysisInput, analyze

    source = AnalysisInput(data, array=pixels)
    results = {}
    for name in names:
        started = time.perf_counter()
        output = analyze(name, source, {})
        results[name] = (scale_boxes(output.data, scale), round((time.perf_counter() - started) * 1000))
    return results
