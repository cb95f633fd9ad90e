"""Geometric operations: resize, thumbnail, crop, rotate, orient, flip and flop."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from chalicelib.errors import InvalidRequest
from chalicelib.registry import Param

if TYPE_CHECKING:
    import numpy as np

from chalicelib.imaging.operations.common import (
    FITS,
    MAX_COORDINATE,
    MAX_SIDE,
    OPERATIONS,
    Resamples,
    SameScale,
    check_color,
    fill_background,
    resample,
    same_size,
)

# ---------------------------------------------------------------- geometry


def resize_geometry(
    in_width: int, in_height: int, width: int | None, height: int | None, fit: str = "cover", upscale: bool = False
) -> tuple[tuple[int, int], tuple[int, int]]:
    """((content width, content height), (output width, output height)) of a resize.

    The content is the resampled picture; `cover` then crops it to the output, `contain` pads it.
    Without `upscale` the picture is never enlarged: the scale is capped at 1.
    """

    def cap(scale: float) -> float:
        return scale if upscale else min(scale, 1.0)

    if width is not None and height is None:
        scale_x = scale_y = cap(width / in_width)
    elif height is not None and width is None:
        scale_x = scale_y = cap(height / in_height)
    elif width is None or height is None:  # neither; requests are refused by _check_resize first
        raise InvalidRequest("'resize' needs 'width' or 'height' (or both)", allowed=["width", "height"])
    elif fit == "fill":
        scale_x, scale_y = cap(width / in_width), cap(height / in_height)
    else:
        pick = max if fit == "cover" else min
        scale_x = scale_y = cap(pick(width / in_width, height / in_height))
    content = (max(1, round(in_width * scale_x)), max(1, round(in_height * scale_y)))
    if width is None or height is None or fit in ("fill", "inside"):
        return content, content
    if fit == "cover":
        return content, (min(width, content[0]), min(height, content[1]))
    return content, (width, height)  # contain: pad to the box


def _resize_plan(params: dict, width: float, height: float) -> Resamples:
    (content_width, content_height), _ = resize_geometry(
        round(width), round(height), params["width"], params["height"], params["fit"], params["upscale"]
    )
    return Resamples(max(content_width / width, content_height / height))


def _check_resize(params: dict) -> dict:
    if params["width"] is None and params["height"] is None:
        raise InvalidRequest("'resize' needs 'width' or 'height' (or both)", allowed=["width", "height"])
    return params


def _center_crop(image: np.ndarray, width: int, height: int) -> np.ndarray:
    top = (image.shape[0] - height) // 2
    left = (image.shape[1] - width) // 2
    return image[top : top + height, left : left + width].copy()


def _pad_to(image: np.ndarray, width: int, height: int, background: str) -> np.ndarray:
    import cv2

    image, fill = fill_background(image, background)
    top = (height - image.shape[0]) // 2
    left = (width - image.shape[1]) // 2
    return cv2.copyMakeBorder(
        image, top, height - image.shape[0] - top, left, width - image.shape[1] - left, cv2.BORDER_CONSTANT, value=fill
    )


# ---------------------------------------------------------------- geometric operations


@OPERATIONS.register(
    "resize",
    Param("width", int, None, "output width in pixels", minimum=1, maximum=MAX_SIDE),
    Param("height", int, None, "output height in pixels", minimum=1, maximum=MAX_SIDE),
    Param(
        "fit",
        str,
        "cover",
        "with both sides: cover (crop to fill), contain (letterbox), fill (stretch), inside (fit within)",
        choices=FITS,
    ),
    Param("upscale", bool, False, "allow enlarging a picture smaller than the requested size"),
    Param("background", str, "#000000", "padding colour for fit=contain, '#RRGGBB' or '#RRGGBBAA'", check=check_color),
    description="Resize to a width and/or height; one side alone keeps the aspect ratio.",
    scale_plan=_resize_plan,
    check_params=_check_resize,
)
def resize(
    image: np.ndarray,
    *,
    width: int | None = None,
    height: int | None = None,
    fit: str = "cover",
    upscale: bool = False,
    background: str = "#000000",
) -> np.ndarray:
    content, output = resize_geometry(image.shape[1], image.shape[0], width, height, fit, upscale)
    resized = resample(image, *content)
    if output == content:
        return resized
    if fit == "cover":
        return _center_crop(resized, *output)
    return _pad_to(resized, *output, background)


@OPERATIONS.register(
    "thumbnail",
    Param("size", int, 256, "longest side of the thumbnail in pixels", minimum=1, maximum=4096),
    description="Shrink so the longest side is at most `size`, keeping the aspect ratio (never enlarges).",
    scale_plan=lambda p, w, h: Resamples(min(1.0, p["size"] / max(w, h))),
)
def thumbnail(image: np.ndarray, *, size: int = 256) -> np.ndarray:
    height, width = image.shape[:2]
    scale = min(1.0, size / max(width, height))
    return resample(image, max(1, round(width * scale)), max(1, round(height * scale)))


def crop_box(image_width: int, image_height: int, x: int, y: int, width: int, height: int) -> tuple[int, int, int, int]:
    """The box clamped to the image; InvalidRequest when nothing of it is inside."""
    left, top = min(x, image_width), min(y, image_height)
    right, bottom = min(x + width, image_width), min(y + height, image_height)
    if right <= left or bottom <= top:
        raise InvalidRequest(
            f"crop box x={x}, y={y}, width={width}, height={height} lies outside the "
            f"{image_width}×{image_height} image",
            code="crop_outside_image",
        )
    return left, top, right - left, bottom - top


def _crop_plan(params: dict, width: float, height: float) -> SameScale:
    box = crop_box(round(width), round(height), params["x"], params["y"], params["width"], params["height"])
    return SameScale(box[2], box[3])


def _crop_rescale(params: dict, factor: float) -> dict:
    # The box is in full-resolution pixels; the image was decoded `factor` times smaller.
    x, y = math.floor(params["x"] * factor), math.floor(params["y"] * factor)
    right = math.ceil((params["x"] + params["width"]) * factor)
    bottom = math.ceil((params["y"] + params["height"]) * factor)
    return {"x": x, "y": y, "width": max(1, right - x), "height": max(1, bottom - y)}


@OPERATIONS.register(
    "crop",
    Param("x", int, 0, "left edge of the box in pixels", minimum=0, maximum=MAX_COORDINATE),
    Param("y", int, 0, "top edge of the box in pixels", minimum=0, maximum=MAX_COORDINATE),
    Param("width", int, description="box width in pixels", minimum=1, maximum=MAX_COORDINATE),
    Param("height", int, description="box height in pixels", minimum=1, maximum=MAX_COORDINATE),
    description="Cut out a box given in the upright image's pixels; a box partly outside is clamped.",
    scale_plan=_crop_plan,
    rescale=_crop_rescale,
)
def crop(image: np.ndarray, *, x: int = 0, y: int = 0, width: int, height: int) -> np.ndarray:
    left, top, box_width, box_height = crop_box(image.shape[1], image.shape[0], x, y, width, height)
    return image[top : top + box_height, left : left + box_width].copy()


def rotated_size(width: float, height: float, angle: float) -> tuple[int, int]:
    """Size of the canvas that holds a width×height picture turned by `angle` degrees."""
    radians = math.radians(angle)
    cos, sin = abs(math.cos(radians)), abs(math.sin(radians))
    return math.ceil(round(width * cos + height * sin, 6)), math.ceil(round(width * sin + height * cos, 6))


def _rotate_plan(params: dict, width: float, height: float) -> SameScale:
    if not params["expand"]:
        return SameScale(width, height)
    return SameScale(*rotated_size(width, height, params["angle"]))


@OPERATIONS.register(
    "rotate",
    Param("angle", float, description="degrees clockwise", minimum=-360, maximum=360),
    Param("expand", bool, True, "grow the canvas to hold the whole turned picture"),
    Param("background", str, "#000000", "colour of the uncovered corners, '#RRGGBB' or '#RRGGBBAA'", check=check_color),
    description="Rotate clockwise by any angle; quarter turns are exact.",
    scale_plan=_rotate_plan,
)
def rotate(image: np.ndarray, *, angle: float, expand: bool = True, background: str = "#000000") -> np.ndarray:
    import cv2

    angle = angle % 360
    quarter: dict[float, int] = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}
    if angle == 0:
        return image.copy()
    if angle in quarter and (expand or angle == 180):
        return cv2.rotate(image, quarter[angle])
    image, fill = fill_background(image, background)
    height, width = image.shape[:2]
    out_width, out_height = rotated_size(width, height, angle) if expand else (width, height)
    # OpenCV turns counter-clockwise for positive angles; move the centre to the new canvas's centre.
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), -angle, 1.0)
    matrix[0, 2] += (out_width - width) / 2
    matrix[1, 2] += (out_height - height) / 2
    return cv2.warpAffine(
        image, matrix, (out_width, out_height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=fill
    )


@OPERATIONS.register(
    "auto_orient",
    Param("orientation", int, 1, "EXIF orientation code to apply (1 = as is … 8)", minimum=1, maximum=8),
    description="Turn the picture upright for an EXIF orientation code; stored images are "
    "decoded upright already, so the default leaves them as they are.",
    scale_plan=lambda p, w, h: SameScale(h, w) if p["orientation"] >= 5 else SameScale(w, h),
)
def auto_orient(image: np.ndarray, *, orientation: int = 1) -> np.ndarray:
    import cv2
    import numpy as np

    if orientation >= 5:  # 5-8 mirror across the main diagonal first
        image = np.ascontiguousarray(np.swapaxes(image, 0, 1))
        orientation -= 4  # then 5→1 (as is), 6→2 (flop), 7→3 (half turn), 8→4 (flip)
    transforms = {
        1: lambda a: a.copy(),
        2: lambda a: cv2.flip(a, 1),
        3: lambda a: cv2.rotate(a, cv2.ROTATE_180),
        4: lambda a: cv2.flip(a, 0),
    }
    return transforms[orientation](image)


@OPERATIONS.register("flip", description="Mirror top to bottom.", scale_plan=same_size)
def flip(image: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.flip(image, 0)


@OPERATIONS.register("flop", description="Mirror left to right.", scale_plan=same_size)
def flop(image: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.flip(image, 1)
