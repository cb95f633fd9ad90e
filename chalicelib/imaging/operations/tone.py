"""Colour and tone operations: grayscale, modulate, gamma, equalize, invert."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.registry import Param

if TYPE_CHECKING:
    import numpy as np

from chalicelib.imaging.operations.common import OPERATIONS, join_alpha, same_size, split_alpha, to_gray

# ---------------------------------------------------------------- colour and tone


@OPERATIONS.register(
    "grayscale", description="Convert to shades of grey (ITU-R 601 luma); alpha is kept.", scale_plan=same_size
)
def grayscale(image: np.ndarray) -> np.ndarray:
    color, alpha = split_alpha(image)
    return join_alpha(to_gray(color), alpha)


@OPERATIONS.register(
    "modulate",
    Param("brightness", float, 1.0, "multiplier: 0 is black, 1 unchanged", minimum=0, maximum=10),
    Param(
        "contrast", float, 1.0, "multiplier around the mean grey: 0 is flat grey, 1 unchanged", minimum=0, maximum=10
    ),
    Param("saturation", float, 1.0, "multiplier: 0 is greyscale, 1 unchanged", minimum=0, maximum=10),
    description="Change brightness, contrast and saturation (applied in that order, as Pillow's ImageEnhance).",
    scale_plan=same_size,
)
def modulate(
    image: np.ndarray, *, brightness: float = 1.0, contrast: float = 1.0, saturation: float = 1.0
) -> np.ndarray:
    import cv2

    color, alpha = split_alpha(image)
    if brightness != 1.0:
        color = cv2.addWeighted(color, brightness, color, 0.0, 0.0)
    if contrast != 1.0:
        mean = int(to_gray(color).mean() + 0.5)
        color = cv2.addWeighted(color, contrast, color, 0.0, mean * (1.0 - contrast))
    if saturation != 1.0 and color.ndim == 3:
        gray = cv2.cvtColor(to_gray(color), cv2.COLOR_GRAY2BGR)
        color = cv2.addWeighted(color, saturation, gray, 1.0 - saturation, 0.0)
    return join_alpha(color, alpha)


@OPERATIONS.register(
    "gamma",
    Param(
        "gamma",
        float,
        description="out = in^(1/gamma): above 1 brightens the mid-tones, below 1 darkens",
        minimum=0.1,
        maximum=10,
    ),
    description="Gamma correction of the colour channels.",
    scale_plan=same_size,
)
def gamma(image: np.ndarray, *, gamma: float) -> np.ndarray:
    import cv2
    import numpy as np

    table = np.round(255.0 * (np.arange(256) / 255.0) ** (1.0 / gamma)).astype(np.uint8)
    color, alpha = split_alpha(image)
    return join_alpha(cv2.LUT(color, table), alpha)


@OPERATIONS.register(
    "equalize",
    Param("clip_limit", float, 2.0, "contrast limit per tile (higher: stronger)", minimum=0.5, maximum=40),
    Param("tile_grid", int, 8, "tiles across and down", minimum=1, maximum=64),
    description="Adaptive histogram equalization (CLAHE) of the lightness.",
    scale_plan=same_size,
)
def equalize(image: np.ndarray, *, clip_limit: float = 2.0, tile_grid: int = 8) -> np.ndarray:
    import cv2

    clahe = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(tile_grid, tile_grid))
    color, alpha = split_alpha(image)
    if color.ndim == 2:
        return join_alpha(clahe.apply(color), alpha)
    lab = cv2.cvtColor(color, cv2.COLOR_BGR2LAB)
    lab[:, :, 0] = clahe.apply(lab[:, :, 0])
    return join_alpha(cv2.cvtColor(lab, cv2.COLOR_LAB2BGR), alpha)


@OPERATIONS.register("invert", description="Negative of the colour channels; alpha is kept.", scale_plan=same_size)
def invert(image: np.ndarray) -> np.ndarray:
    import cv2

    color, alpha = split_alpha(image)
    return join_alpha(cv2.bitwise_not(color), alpha)
