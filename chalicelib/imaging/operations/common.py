"""What every operation family shares: the registry, limits, parameter checks and array helpers."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, NamedTuple

from chalicelib.errors import InvalidRequest
from chalicelib.registry import OperationEntry, Registry

if TYPE_CHECKING:
    import numpy as np

OPERATIONS = Registry("operation", OperationEntry)

MAX_SIDE = 8192  # largest width/height an operation may ask for (8192² ≈ 67 MP, under max_pixels)
MAX_COORDINATE = 100_000
MAX_PIPELINE_STEPS = 20
OUTPUT_FORMATS = ("jpeg", "png", "webp", "avif")
DEFAULT_QUALITY = 85
FITS = ("cover", "contain", "fill", "inside")
SMART_CROP_FOCUS = ("auto", "faces", "saliency", "center")
THRESHOLD_METHODS = ("otsu", "binary", "adaptive")


class SameScale(NamedTuple):
    width: float
    height: float


class Resamples(NamedTuple):
    fraction: float


def same_size(params: dict, width: float, height: float) -> SameScale:
    return SameScale(width, height)


# ---------------------------------------------------------------- parameter checks

_COLOR = re.compile(r"^#?([0-9a-fA-F]{6}|[0-9a-fA-F]{8})$")
_ASPECT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*[:/x]\s*(\d+(?:\.\d+)?)\s*$")


def check_color(value: str) -> str:
    if not _COLOR.match(value):
        raise InvalidRequest(f"'background' must be a colour '#RRGGBB' or '#RRGGBBAA', got {value!r}")
    return "#" + value.lstrip("#").lower()


def check_aspect(value: str) -> str:
    match = _ASPECT.match(value)
    if not match or float(match[1]) <= 0 or float(match[2]) <= 0:
        raise InvalidRequest(f"'aspect' must look like '16:9', got {value!r}")
    ratio = float(match[1]) / float(match[2])
    if not 0.01 <= ratio <= 100:
        raise InvalidRequest(f"'aspect' must be between 1:100 and 100:1, got {value!r}")
    return f"{match[1]}:{match[2]}"


def check_odd(name: str):
    def check(value: int) -> int:
        if value % 2 == 0:
            raise InvalidRequest(f"'{name}' must be odd, got {value}")
        return value

    return check


def aspect_ratio(aspect: str) -> float:
    width, height = aspect.split(":")
    return float(width) / float(height)


def fill_background(image: np.ndarray, color: str) -> tuple[np.ndarray, tuple]:
    """The image (with an alpha channel added when the colour is see-through) and the fill value."""
    import cv2

    digits = color.lstrip("#")
    r, g, b = (int(digits[i : i + 2], 16) for i in (0, 2, 4))
    a = int(digits[6:8], 16) if len(digits) == 8 else 255
    if a < 255 and image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGRA)
    elif a < 255 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)
    if image.ndim == 2:
        return image, (round(0.299 * r + 0.587 * g + 0.114 * b),)
    return image, ((b, g, r, a) if image.shape[2] == 4 else (b, g, r))


def split_alpha(image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    if image.ndim == 3 and image.shape[2] == 4:
        return image[:, :, :3], image[:, :, 3]
    return image, None


def join_alpha(color: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    import cv2
    import numpy as np

    if alpha is None:
        return color
    if color.ndim == 2:
        color = cv2.cvtColor(color, cv2.COLOR_GRAY2BGR)
    return np.dstack([color, alpha])


def to_gray(image: np.ndarray) -> np.ndarray:
    import cv2

    if image.ndim == 2:
        return image
    return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY)


def resample(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize to exactly width×height with a filter suited to the ratio.

    Bilinear is an exact 2×2 box at a ratio of 2 and close to area averaging below it, at a tenth of
    INTER_AREA's cost for non-integer ratios; a reduced-size JPEG decode always leaves a ratio below 2.
    Larger reductions average areas; enlargements use bicubic.
    """
    import cv2

    in_height, in_width = image.shape[:2]
    if (width, height) == (in_width, in_height):
        return image.copy()
    if width > in_width or height > in_height:
        interpolation = cv2.INTER_CUBIC
    elif in_width < 2 * width and in_height < 2 * height:
        interpolation = cv2.INTER_LINEAR
    else:
        interpolation = cv2.INTER_AREA
    return cv2.resize(image, (width, height), interpolation=interpolation)
