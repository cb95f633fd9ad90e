"""Filters whose radius is in full-resolution pixels: blur, median, sharpen, denoise, edges, threshold."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.registry import Param

if TYPE_CHECKING:
    import numpy as np

from chalicelib.imaging.operations.common import (
    OPERATIONS,
    THRESHOLD_METHODS,
    SameScale,
    check_odd,
    join_alpha,
    split_alpha,
    to_gray,
)

# ---------------------------------------------------------------- filters (radius in pixels: full resolution)


@OPERATIONS.register(
    "blur",
    Param("sigma", float, 2.0, "standard deviation of the gaussian in pixels", minimum=0.1, maximum=100),
    description="Gaussian blur.",
)
def blur(image: np.ndarray, *, sigma: float = 2.0) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(image, (0, 0), sigma)


@OPERATIONS.register(
    "median",
    Param("size", int, 3, "odd width of the square window in pixels", minimum=3, maximum=15, check=check_odd("size")),
    description="Median filter: removes salt-and-pepper noise, keeps edges.",
)
def median(image: np.ndarray, *, size: int = 3) -> np.ndarray:
    import cv2

    return cv2.medianBlur(image, size)


@OPERATIONS.register(
    "sharpen",
    Param("sigma", float, 1.0, "radius of the blur subtracted, in pixels", minimum=0.1, maximum=20),
    Param("amount", float, 1.0, "strength: 1 adds 100% of the detail", minimum=0, maximum=10),
    Param(
        "threshold",
        int,
        0,
        "leave differences up to this level alone (spares flat areas and noise)",
        minimum=0,
        maximum=255,
    ),
    description="Unsharp mask: out = in + amount × (in − gaussian blur).",
)
def sharpen(image: np.ndarray, *, sigma: float = 1.0, amount: float = 1.0, threshold: int = 0) -> np.ndarray:
    import cv2
    import numpy as np

    color, alpha = split_alpha(image)
    blurred = cv2.GaussianBlur(color, (0, 0), sigma)
    sharpened = cv2.addWeighted(color, 1.0 + amount, blurred, -amount, 0.0)
    if threshold > 0:
        sharpened = np.where(cv2.absdiff(color, blurred) > threshold, sharpened, color)
    return join_alpha(sharpened, alpha)


@OPERATIONS.register(
    "denoise",
    Param(
        "strength", float, 10.0, "filter strength h (higher removes more noise and more detail)", minimum=1, maximum=50
    ),
    description="Non-local means denoising (slow on large images: resize first).",
)
def denoise(image: np.ndarray, *, strength: float = 10.0) -> np.ndarray:
    import cv2

    color, alpha = split_alpha(image)
    if color.ndim == 2:
        return join_alpha(cv2.fastNlMeansDenoising(color, None, strength, 7, 21), alpha)
    return join_alpha(cv2.fastNlMeansDenoisingColored(color, None, strength, strength, 7, 21), alpha)


@OPERATIONS.register(
    "edges",
    Param("low", int, 50, "lower hysteresis threshold on the gradient magnitude", minimum=0, maximum=1000),
    Param("high", int, 150, "upper hysteresis threshold (strong edges)", minimum=0, maximum=1000),
    Param("sigma", float, 1.0, "gaussian smoothing before detection, in pixels (0 for none)", minimum=0, maximum=10),
    description="Canny edge detection: a grey image, edges white on black.",
)
def edges(image: np.ndarray, *, low: int = 50, high: int = 150, sigma: float = 1.0) -> np.ndarray:
    import cv2

    gray = to_gray(image)
    if sigma > 0:
        gray = cv2.GaussianBlur(gray, (0, 0), sigma)
    return cv2.Canny(gray, min(low, high), max(low, high), L2gradient=True)


@OPERATIONS.register(
    "threshold",
    Param(
        "method",
        str,
        "otsu",
        "otsu (automatic level), binary (fixed level), adaptive (local mean)",
        choices=THRESHOLD_METHODS,
    ),
    Param("value", int, 128, "level for method=binary: brighter pixels become white", minimum=0, maximum=255),
    Param(
        "block_size",
        int,
        31,
        "odd neighbourhood width in pixels for method=adaptive",
        minimum=3,
        maximum=255,
        check=check_odd("block_size"),
    ),
    Param(
        "offset",
        float,
        5.0,
        "for method=adaptive: white where brighter than the local mean minus this",
        minimum=-255,
        maximum=255,
    ),
    description="Black and white: binary, Otsu or adaptive threshold of the grey levels.",
    scale_plan=lambda p, w, h: None if p["method"] == "adaptive" else SameScale(w, h),
)
def threshold(
    image: np.ndarray, *, method: str = "otsu", value: int = 128, block_size: int = 31, offset: float = 5.0
) -> np.ndarray:
    import cv2

    gray = to_gray(image)
    if method == "adaptive":
        return cv2.adaptiveThreshold(gray, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, block_size, offset)
    flags = cv2.THRESH_BINARY | (cv2.THRESH_OTSU if method == "otsu" else 0)
    return cv2.threshold(gray, value, 255, flags)[1]
