"""Run an operation or a pipeline on image bytes: one decode, the steps, one encode.

The decode is as small as the steps allow: the leading steps that give the same picture at any
resolution (colour changes, flips, crops) are followed until one that resamples (resize,
thumbnail); a JPEG is then decoded at the smallest DCT scale that still covers what that step
needs. Crop boxes are in the upright full-size image's pixels and are scaled to the decoded size.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chalicelib.errors import InvalidRequest
from chalicelib.imaging import imageio
from chalicelib.imaging.operations import DEFAULT_QUALITY, OPERATIONS, OUTPUT_FORMATS, Resamples

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class OperationOutput:
    data: bytes
    format: str  # "jpeg" | "png" | "webp"
    width: int
    height: int
    size_bytes: int
    content_type: str


def operation_steps(operation: str, params: dict | None) -> list[dict]:
    """The validated steps [{operation, params}] of an operation or a pipeline; raises InvalidRequest."""
    clean = OPERATIONS.get(operation).clean_params(params)
    if operation == "pipeline":
        return clean["steps"]
    return [{"operation": operation, "params": clean}]


def decode_fraction(steps: list[dict], width: float, height: float) -> tuple[float, int]:
    """(fraction of the full resolution the steps need, how many leading steps run before resampling)."""
    for index, step in enumerate(steps):
        plan = OPERATIONS.get(step["operation"]).scale_plan
        result = plan(step["params"], width, height) if plan else None
        if result is None:
            return 1.0, index
        if isinstance(result, Resamples):
            return min(1.0, result.fraction), index
        width, height = result
    return 1.0, len(steps)


def output_format(steps: list[dict], source_format: str | None) -> tuple[str, int]:
    """(format, quality): the last convert step's, else the source's when we can write it, else PNG."""
    for step in reversed(steps):
        if step["operation"] == "convert":
            return step["params"]["format"], step["params"]["quality"]
    source = (source_format or "").lower().removeprefix("image/").replace("jpg", "jpeg")
    return (source if source in OUTPUT_FORMATS else "png"), DEFAULT_QUALITY


def run_operation(
    data: bytes, operation: str, params: dict | None, *, max_pixels: int, source_format: str | None = None
) -> OperationOutput:
    """Decode `data`, apply the operation (or pipeline), encode; raises InvalidRequest or ImageRejected."""
    steps = operation_steps(operation, params)
    info = imageio.probe(data, max_pixels=max_pixels)
    fraction, leading = 1.0, 0
    if info.format == "JPEG":  # only JPEG decodes faster at a reduced size
        width, height = _upright_size(data, info)
        fraction, leading = decode_fraction(steps, width, height)
    min_side = math.ceil(fraction * max(info.width, info.height)) if fraction < 1 else None
    image = _to_bgr(imageio.decode(data, max_pixels=max_pixels, min_longest_side=min_side))
    factor = max(image.shape[:2]) / max(info.width, info.height)
    for index, step in enumerate(steps):
        entry = OPERATIONS.get(step["operation"])
        step_params = step["params"]
        rescale = entry.rescale
        if rescale and index < leading and factor < 1:
            step_params = {**step_params, **rescale(step_params, factor)}
        image = entry.func(image, **step_params)
        if image.shape[0] * image.shape[1] > max_pixels:
            raise InvalidRequest(
                f"step {index} ({step['operation']}) makes a {image.shape[1]}×{image.shape[0]} "
                f"image, more than the limit of {max_pixels:,} pixels",
                code="too_many_pixels",
            )
    fmt, quality = output_format(steps, source_format or info.format)
    encoded = imageio.encode(_to_pil(image), imageio.OUTPUT_FORMATS[fmt], quality)
    return OperationOutput(
        encoded, fmt, image.shape[1], image.shape[0], len(encoded), imageio.CONTENT_TYPES[imageio.OUTPUT_FORMATS[fmt]]
    )


def _upright_size(data: bytes, info: imageio.ImageInfo) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
    return (info.height, info.width) if orientation in (5, 6, 7, 8) else (info.width, info.height)


# OpenCV's colour conversions: several times faster than numpy's reversed-channel copies in
# imageio.to_array/from_array, which stay numpy-only for the ml layer (no OpenCV there).
def _to_bgr(picture: Image.Image) -> np.ndarray:
    import cv2
    import numpy as np

    pixels = np.asarray(picture)
    if picture.mode == "RGB":
        return cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    if picture.mode == "RGBA":
        return cv2.cvtColor(pixels, cv2.COLOR_RGBA2BGRA)
    return pixels.copy()


def _to_pil(image: np.ndarray) -> Image.Image:
    import cv2
    from PIL import Image

    if image.ndim == 3 and image.shape[2] == 3:
        return Image.fromarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    if image.ndim == 3 and image.shape[2] == 4:
        return Image.fromarray(cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA))
    return Image.fromarray(image.reshape(image.shape[:2]))
