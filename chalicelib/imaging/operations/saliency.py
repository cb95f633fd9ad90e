"""Smart crop: the window of a given shape that keeps the faces or the most salient part."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.errors import InvalidRequest
from chalicelib.registry import Param

if TYPE_CHECKING:
    import numpy as np

from chalicelib.imaging.operations.common import (
    MAX_SIDE,
    OPERATIONS,
    SMART_CROP_FOCUS,
    Resamples,
    SameScale,
    aspect_ratio,
    check_aspect,
    resample,
    to_gray,
)


def _check_smart_crop(params: dict) -> dict:
    no_size = params["width"] is None and params["height"] is None
    full_size = params["width"] is not None and params["height"] is not None
    if not ((params["aspect"] is not None and no_size) or (params["aspect"] is None and full_size)):
        raise InvalidRequest(
            "'smart_crop' needs either 'aspect' (like '16:9') or both 'width' and 'height'",
            allowed=["aspect", "width", "height"],
        )
    return params


def _smart_crop_ratio(params: dict) -> float:
    return aspect_ratio(params["aspect"]) if params["aspect"] else params["width"] / params["height"]


def _window(width: float, height: float, ratio: float) -> tuple[int, int]:
    """The largest width×height window of this aspect ratio inside the image."""
    if width / height > ratio:
        return max(1, min(round(width), round(height * ratio))), round(height)
    return round(width), max(1, min(round(height), round(width / ratio)))


def _smart_crop_plan(params: dict, width: float, height: float):
    window = _window(width, height, _smart_crop_ratio(params))
    if params["aspect"]:
        return SameScale(*window)
    return Resamples(min(1.0, max(params["width"] / window[0], params["height"] / window[1])))


def spectral_residual_saliency(gray: np.ndarray, side: int = 128) -> np.ndarray:
    """Saliency map (float32, longest side `side`) by the spectral residual (Hou & Zhang, CVPR 2007)."""
    import cv2
    import numpy as np

    scale = side / max(gray.shape)
    small = cv2.resize(
        gray, (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale))), interpolation=cv2.INTER_AREA
    ).astype(np.float32)
    spectrum = np.fft.fft2(small)
    log_amplitude = np.log(np.abs(spectrum) + 1e-6).astype(np.float32)
    residual = log_amplitude - cv2.blur(log_amplitude, (3, 3), borderType=cv2.BORDER_REPLICATE)
    saliency = np.abs(np.fft.ifft2(np.exp(residual + 1j * np.angle(spectrum)))) ** 2
    return cv2.GaussianBlur(saliency.astype(np.float32), (0, 0), side / 40)


def _best_offset(profile: np.ndarray, length: float) -> float:
    """Start (in profile cells) of the window of `length` cells holding the most weight."""
    import numpy as np

    cells = max(1, min(len(profile), round(length)))
    sums = np.convolve(profile, np.ones(cells), mode="valid")
    # Among equal windows prefer the one nearest the middle.
    candidates = np.flatnonzero(sums >= sums.max() * (1 - 1e-6))
    middle = (len(profile) - cells) / 2
    return float(candidates[np.argmin(np.abs(candidates - middle))])


def smart_crop_box(image: np.ndarray, ratio: float, focus: str = "auto") -> tuple[int, int, int, int]:
    """(x, y, width, height) of the largest window of this aspect ratio around faces or salient detail."""
    from chalicelib.imaging.faces import detect_faces

    height, width = image.shape[:2]
    window_width, window_height = _window(width, height, ratio)
    free_x = window_width < width
    center = (width / 2, height / 2)
    faces = detect_faces(image) if focus in ("auto", "faces") else []
    if faces:
        left = min(f["box"]["x"] for f in faces)
        top = min(f["box"]["y"] for f in faces)
        right = max(f["box"]["x"] + f["box"]["width"] for f in faces)
        bottom = max(f["box"]["y"] + f["box"]["height"] for f in faces)
        center = ((left + right) / 2, (top + bottom) / 2)
    elif focus in ("auto", "saliency"):
        saliency = spectral_residual_saliency(to_gray(image))
        cells_per_pixel = saliency.shape[1] / width if free_x else saliency.shape[0] / height
        profile = saliency.sum(axis=0 if free_x else 1)
        length = (window_width if free_x else window_height) * cells_per_pixel
        start = _best_offset(profile, length) / cells_per_pixel
        center = (start + window_width / 2, center[1]) if free_x else (center[0], start + window_height / 2)
    x = min(max(0, round(center[0] - window_width / 2)), width - window_width)
    y = min(max(0, round(center[1] - window_height / 2)), height - window_height)
    return x, y, window_width, window_height


@OPERATIONS.register(
    "smart_crop",
    Param("aspect", str, None, "aspect ratio of the crop, like '16:9' (or give width and height)", check=check_aspect),
    Param("width", int, None, "output width in pixels (with height)", minimum=1, maximum=MAX_SIDE),
    Param("height", int, None, "output height in pixels (with width)", minimum=1, maximum=MAX_SIDE),
    Param(
        "focus",
        str,
        "auto",
        "what to keep: auto (faces, else the most salient region), faces, saliency, center",
        choices=SMART_CROP_FOCUS,
    ),
    description="Crop to an aspect ratio around the faces or the most salient region; "
    "with width and height, resize to them too.",
    scale_plan=_smart_crop_plan,
    check_params=_check_smart_crop,
)
def smart_crop(
    image: np.ndarray,
    *,
    aspect: str | None = None,
    width: int | None = None,
    height: int | None = None,
    focus: str = "auto",
) -> np.ndarray:
    if aspect:
        ratio = aspect_ratio(aspect)
    elif width is not None and height is not None:
        ratio = width / height
    else:  # a direct call; requests are refused by _check_smart_crop first
        raise InvalidRequest("'smart_crop' needs either 'aspect' (like '16:9') or both 'width' and 'height'")
    x, y, box_width, box_height = smart_crop_box(image, ratio, focus)
    cropped = image[y : y + box_height, x : x + box_width]
    if width is None or height is None:
        return cropped.copy()
    return resample(cropped, width, height)
