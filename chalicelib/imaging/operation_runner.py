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
    format: str  # "jpeg" | "png" | "webp" | "avif"
    width: int
    height: int
    size_bytes: int
    content_type: str
    frames: int = 1
    notes: tuple[str, ...] = ()  # what the caller should know: e.g. only the first frame was used

    def details(self) -> dict:
        """What the result row records beside the image: the frame count and the notes."""
        return {"frames": self.frames, **({"notes": list(self.notes)} if self.notes else {})}


# An animation longer than this many frames is refused as a whole by probe (max_frames):
# the configured limit (PIXELAKE_MAX_FRAMES) is passed by the caller.
DEFAULT_MAX_FRAMES = 200


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
    """(format, quality): the last convert step's, else the source's when we can write it, else
    JPEG for a HEIC photo, else PNG."""
    for step in reversed(steps):
        if step["operation"] == "convert":
            return step["params"]["format"], step["params"]["quality"]
    source = (source_format or "").lower().removeprefix("image/").replace("jpg", "jpeg")
    if source in ("heif", "heic"):
        return "jpeg", DEFAULT_QUALITY
    return (source if source in OUTPUT_FORMATS else "png"), DEFAULT_QUALITY


def _keeps_profile(steps: list[dict]) -> bool:
    for step in reversed(steps):
        if step["operation"] == "convert":
            return bool(step["params"].get("keep_profile"))
    return False


def run_operation(
    data: bytes,
    operation: str,
    params: dict | None,
    *,
    max_pixels: int,
    source_format: str | None = None,
    max_frames: int = DEFAULT_MAX_FRAMES,
) -> OperationOutput:
    """Decode `data`, apply the operation (or pipeline), encode; raises InvalidRequest or ImageRejected.

    An animated GIF/WebP/PNG keeps every frame and its duration when the output can hold an
    animation (WebP, PNG, AVIF); otherwise the first frame is used and the output's notes say so.
    """
    steps = operation_steps(operation, params)
    info = imageio.probe(data, max_pixels=max_pixels)
    fmt, quality = output_format(steps, source_format or info.format)
    notes: list[str] = []
    if info.frames > 1 and info.format in imageio.ANIMATED_FORMATS:
        reason = _why_not_animated(info, fmt, max_pixels=max_pixels, max_frames=max_frames)
        if reason is None:
            return _run_animation(data, steps, fmt, quality, max_pixels=max_pixels, max_frames=max_frames)
        notes.append(f"only the first of the {info.frames} frames was used: {reason}")
    fraction, leading = 1.0, 0
    if info.format == "JPEG":  # only JPEG decodes faster at a reduced size
        width, height = _upright_size(data, info)
        fraction, leading = decode_fraction(steps, width, height)
    min_side = math.ceil(fraction * max(info.width, info.height)) if fraction < 1 else None
    decoded = imageio.decode(data, max_pixels=max_pixels, min_longest_side=min_side, keep_profile=_keeps_profile(steps))
    kept_profile = decoded.info.get("icc_profile")
    image = _to_bgr(decoded)
    factor = max(image.shape[:2]) / max(info.width, info.height)
    image = _apply_steps(image, steps, factor=factor, leading=leading, max_pixels=max_pixels)
    picture = _to_pil(image)
    if kept_profile and picture.mode not in ("RGB", "RGBA"):
        kept_profile = None  # an RGB profile cannot describe the grey picture a step made
    encoded = imageio.encode(picture, imageio.OUTPUT_FORMATS[fmt], quality, icc_profile=kept_profile)
    content_type = imageio.CONTENT_TYPES[imageio.OUTPUT_FORMATS[fmt]]
    return OperationOutput(encoded, fmt, image.shape[1], image.shape[0], len(encoded), content_type, notes=tuple(notes))


def _why_not_animated(info: imageio.ImageInfo, fmt: str, *, max_pixels: int, max_frames: int) -> str | None:
    if imageio.OUTPUT_FORMATS[fmt] not in imageio.ANIMATED_OUTPUTS:
        return f"{fmt} cannot hold an animation (webp, png and avif can)"
    if info.frames > max_frames:
        return f"it has more than the limit of {max_frames} frames"
    if info.frames * info.width * info.height > max_pixels:
        return f"its frames together have more than the limit of {max_pixels:,} pixels"
    return None


def _apply_steps(image: np.ndarray, steps: list[dict], *, factor: float, leading: int, max_pixels: int) -> np.ndarray:
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
    return image


def _run_animation(
    data: bytes, steps: list[dict], fmt: str, quality: int, *, max_pixels: int, max_frames: int
) -> OperationOutput:
    """Every frame through the steps, each keeping its duration; all must come out the same size."""
    animation = imageio.decode_frames(data, max_pixels=max_pixels, max_frames=max_frames)
    frames = []
    total = 0
    for frame in animation.frames:
        image = _apply_steps(_to_bgr(frame), steps, factor=1.0, leading=0, max_pixels=max_pixels)
        total += image.shape[0] * image.shape[1]
        if total > max_pixels:
            raise InvalidRequest(
                f"the animation's frames would have more than the limit of {max_pixels:,} pixels together",
                code="too_many_pixels",
            )
        frames.append(_to_pil(image))
    sizes = {frame.size for frame in frames}
    if len(sizes) > 1:  # a step that looks at the content (smart crop) chose differently per frame
        raise InvalidRequest(
            f"the steps give the animation's frames different sizes {sorted(sizes)}; "
            "ask for jpeg output to work on the first frame only",
            code="frames_differ",
        )
    modes = {frame.mode for frame in frames}
    if len(modes) > 1 or "RGBA" not in modes:
        frames = [frame.convert("RGBA") for frame in frames]
    encoded = imageio.encode_animation(
        imageio.Animation(frames, animation.durations_ms, animation.loop), imageio.OUTPUT_FORMATS[fmt], quality
    )
    width, height = frames[0].size
    content_type = imageio.CONTENT_TYPES[imageio.OUTPUT_FORMATS[fmt]]
    return OperationOutput(encoded, fmt, width, height, len(encoded), content_type, frames=len(frames))


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
