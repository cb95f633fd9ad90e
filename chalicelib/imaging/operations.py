"""The image operations registry: small pure functions over OpenCV-ordered uint8 arrays.

Each operation is `func(image, **params) -> ndarray` where `image` is BGR, BGRA or gray uint8,
registered with its declared parameters; the API validates requests and builds its forms from
the declarations, and `run_operation` (chalicelib.imaging.operation_runner) decodes, applies and
encodes. Operations never modify their input.

`scale_plan` tells the runner how an operation relates to the decode size, so that a resize of
a 12 MP JPEG decodes at 1/2 or 1/4 of the work:
- `SameScale(width, height)`: the step gives the same picture at any resolution (colour changes,
  flips, rotations, crops whose box is rescaled); its output size at full resolution.
- `Resamples(fraction)`: the step resamples to a size of its own and only needs its input at this
  fraction of the size it would have at full resolution.
- absent or None: the step needs full resolution (filters whose radius is in pixels).

No numpy/cv2 at module level: the api Lambda imports this module to validate requests.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, NamedTuple

from chalicelib.errors import InvalidRequest
from chalicelib.registry import OperationEntry, Param, Registry

if TYPE_CHECKING:
    import numpy as np

OPERATIONS = Registry("operation", OperationEntry)

MAX_SIDE = 8192  # largest width/height an operation may ask for (8192² ≈ 67 MP, under max_pixels)
MAX_COORDINATE = 100_000
MAX_PIPELINE_STEPS = 20
OUTPUT_FORMATS = ("jpeg", "png", "webp")
DEFAULT_QUALITY = 85
FITS = ("cover", "contain", "fill", "inside")
SMART_CROP_FOCUS = ("auto", "faces", "saliency", "center")
THRESHOLD_METHODS = ("otsu", "binary", "adaptive")


class SameScale(NamedTuple):
    width: float
    height: float


class Resamples(NamedTuple):
    fraction: float


def _same_size(params: dict, width: float, height: float) -> SameScale:
    return SameScale(width, height)


# ---------------------------------------------------------------- parameter checks

_COLOR = re.compile(r"^#?([0-9a-fA-F]{6}|[0-9a-fA-F]{8})$")
_ASPECT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*[:/x]\s*(\d+(?:\.\d+)?)\s*$")


def _check_color(value: str) -> str:
    if not _COLOR.match(value):
        raise InvalidRequest(f"'background' must be a colour '#RRGGBB' or '#RRGGBBAA', got {value!r}")
    return "#" + value.lstrip("#").lower()


def _check_aspect(value: str) -> str:
    match = _ASPECT.match(value)
    if not match or float(match[1]) <= 0 or float(match[2]) <= 0:
        raise InvalidRequest(f"'aspect' must look like '16:9', got {value!r}")
    ratio = float(match[1]) / float(match[2])
    if not 0.01 <= ratio <= 100:
        raise InvalidRequest(f"'aspect' must be between 1:100 and 100:1, got {value!r}")
    return f"{match[1]}:{match[2]}"


def _check_odd(name: str):
    def check(value: int) -> int:
        if value % 2 == 0:
            raise InvalidRequest(f"'{name}' must be odd, got {value}")
        return value

    return check


def _aspect_ratio(aspect: str) -> float:
    width, height = aspect.split(":")
    return float(width) / float(height)


def _background(image: np.ndarray, color: str) -> tuple[np.ndarray, tuple]:
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


def _split_alpha(image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    if image.ndim == 3 and image.shape[2] == 4:
        return image[:, :, :3], image[:, :, 3]
    return image, None


def _with_alpha(color: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    import cv2
    import numpy as np

    if alpha is None:
        return color
    if color.ndim == 2:
        color = cv2.cvtColor(color, cv2.COLOR_GRAY2BGR)
    return np.dstack([color, alpha])


def _gray(image: np.ndarray) -> np.ndarray:
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

    if width is None or height is None:
        scale = cap(width / in_width if width is not None else height / in_height)
        scale_x = scale_y = scale
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

    image, fill = _background(image, background)
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
    Param("background", str, "#000000", "padding colour for fit=contain, '#RRGGBB' or '#RRGGBBAA'", check=_check_color),
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
    return _aspect_ratio(params["aspect"]) if params["aspect"] else params["width"] / params["height"]


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
        saliency = spectral_residual_saliency(_gray(image))
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
    Param("aspect", str, None, "aspect ratio of the crop, like '16:9' (or give width and height)", check=_check_aspect),
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
    ratio = _aspect_ratio(aspect) if aspect else width / height
    x, y, box_width, box_height = smart_crop_box(image, ratio, focus)
    cropped = image[y : y + box_height, x : x + box_width]
    if width is None:
        return cropped.copy()
    return resample(cropped, width, height)


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
    Param(
        "background", str, "#000000", "colour of the uncovered corners, '#RRGGBB' or '#RRGGBBAA'", check=_check_color
    ),
    description="Rotate clockwise by any angle; quarter turns are exact.",
    scale_plan=_rotate_plan,
)
def rotate(image: np.ndarray, *, angle: float, expand: bool = True, background: str = "#000000") -> np.ndarray:
    import cv2

    angle = angle % 360
    quarter = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}
    if angle == 0:
        return image.copy()
    if angle in quarter and (expand or angle == 180):
        return cv2.rotate(image, quarter[angle])
    image, fill = _background(image, background)
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


@OPERATIONS.register("flip", description="Mirror top to bottom.", scale_plan=_same_size)
def flip(image: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.flip(image, 0)


@OPERATIONS.register("flop", description="Mirror left to right.", scale_plan=_same_size)
def flop(image: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.flip(image, 1)


# ---------------------------------------------------------------- colour and tone


@OPERATIONS.register(
    "grayscale", description="Convert to shades of grey (ITU-R 601 luma); alpha is kept.", scale_plan=_same_size
)
def grayscale(image: np.ndarray) -> np.ndarray:
    color, alpha = _split_alpha(image)
    return _with_alpha(_gray(color), alpha)


@OPERATIONS.register(
    "modulate",
    Param("brightness", float, 1.0, "multiplier: 0 is black, 1 unchanged", minimum=0, maximum=10),
    Param(
        "contrast", float, 1.0, "multiplier around the mean grey: 0 is flat grey, 1 unchanged", minimum=0, maximum=10
    ),
    Param("saturation", float, 1.0, "multiplier: 0 is greyscale, 1 unchanged", minimum=0, maximum=10),
    description="Change brightness, contrast and saturation (applied in that order, as Pillow's ImageEnhance).",
    scale_plan=_same_size,
)
def modulate(
    image: np.ndarray, *, brightness: float = 1.0, contrast: float = 1.0, saturation: float = 1.0
) -> np.ndarray:
    import cv2

    color, alpha = _split_alpha(image)
    if brightness != 1.0:
        color = cv2.addWeighted(color, brightness, color, 0.0, 0.0)
    if contrast != 1.0:
        mean = int(_gray(color).mean() + 0.5)
        color = cv2.addWeighted(color, contrast, color, 0.0, mean * (1.0 - contrast))
    if saturation != 1.0 and color.ndim == 3:
        gray = cv2.cvtColor(_gray(color), cv2.COLOR_GRAY2BGR)
        color = cv2.addWeighted(color, saturation, gray, 1.0 - saturation, 0.0)
    return _with_alpha(color, alpha)


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
    scale_plan=_same_size,
)
def gamma(image: np.ndarray, *, gamma: float) -> np.ndarray:
    import cv2
    import numpy as np

    table = np.round(255.0 * (np.arange(256) / 255.0) ** (1.0 / gamma)).astype(np.uint8)
    color, alpha = _split_alpha(image)
    return _with_alpha(cv2.LUT(color, table), alpha)


@OPERATIONS.register(
    "equalize",
    Param("clip_limit", float, 2.0, "contrast limit per tile (higher: stronger)", minimum=0.5, maximum=40),
    Param("tile_grid", int, 8, "tiles across and down", minimum=1, maximum=64),
    description="Adaptive histogram equalization (CLAHE) of the lightness.",
    scale_plan=_same_size,
)
def equalize(image: np.ndarray, *, clip_limit: float = 2.0, tile_grid: int = 8) -> np.ndarray:
    import cv2

    clahe = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(tile_grid, tile_grid))
    color, alpha = _split_alpha(image)
    if color.ndim == 2:
        return _with_alpha(clahe.apply(color), alpha)
    lab = cv2.cvtColor(color, cv2.COLOR_BGR2LAB)
    lab[:, :, 0] = clahe.apply(lab[:, :, 0])
    return _with_alpha(cv2.cvtColor(lab, cv2.COLOR_LAB2BGR), alpha)


@OPERATIONS.register("invert", description="Negative of the colour channels; alpha is kept.", scale_plan=_same_size)
def invert(image: np.ndarray) -> np.ndarray:
    import cv2

    color, alpha = _split_alpha(image)
    return _with_alpha(cv2.bitwise_not(color), alpha)


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
    Param("size", int, 3, "odd width of the square window in pixels", minimum=3, maximum=15, check=_check_odd("size")),
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

    color, alpha = _split_alpha(image)
    blurred = cv2.GaussianBlur(color, (0, 0), sigma)
    sharpened = cv2.addWeighted(color, 1.0 + amount, blurred, -amount, 0.0)
    if threshold > 0:
        sharpened = np.where(cv2.absdiff(color, blurred) > threshold, sharpened, color)
    return _with_alpha(sharpened, alpha)


@OPERATIONS.register(
    "denoise",
    Param(
        "strength", float, 10.0, "filter strength h (higher removes more noise and more detail)", minimum=1, maximum=50
    ),
    description="Non-local means denoising (slow on large images: resize first).",
)
def denoise(image: np.ndarray, *, strength: float = 10.0) -> np.ndarray:
    import cv2

    color, alpha = _split_alpha(image)
    if color.ndim == 2:
        return _with_alpha(cv2.fastNlMeansDenoising(color, None, strength, 7, 21), alpha)
    return _with_alpha(cv2.fastNlMeansDenoisingColored(color, None, strength, strength, 7, 21), alpha)


@OPERATIONS.register(
    "edges",
    Param("low", int, 50, "lower hysteresis threshold on the gradient magnitude", minimum=0, maximum=1000),
    Param("high", int, 150, "upper hysteresis threshold (strong edges)", minimum=0, maximum=1000),
    Param("sigma", float, 1.0, "gaussian smoothing before detection, in pixels (0 for none)", minimum=0, maximum=10),
    description="Canny edge detection: a grey image, edges white on black.",
)
def edges(image: np.ndarray, *, low: int = 50, high: int = 150, sigma: float = 1.0) -> np.ndarray:
    import cv2

    gray = _gray(image)
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
        check=_check_odd("block_size"),
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

    gray = _gray(image)
    if method == "adaptive":
        return cv2.adaptiveThreshold(gray, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, block_size, offset)
    flags = cv2.THRESH_BINARY | (cv2.THRESH_OTSU if method == "otsu" else 0)
    return cv2.threshold(gray, value, 255, flags)[1]


# ---------------------------------------------------------------- output and composition


@OPERATIONS.register(
    "convert",
    Param("format", str, description="output format", choices=OUTPUT_FORMATS),
    Param("quality", int, DEFAULT_QUALITY, "JPEG/WebP quality", minimum=1, maximum=100),
    description="Choose the output format and quality (pixels unchanged; the last convert step wins).",
    scale_plan=_same_size,
)
def convert(image: np.ndarray, *, format: str, quality: int = DEFAULT_QUALITY) -> np.ndarray:
    return image.copy()


def clean_steps(steps: list) -> list[dict]:
    """Pipeline steps validated through the registry: [{operation, params}] with defaults filled in."""
    if not steps:
        raise InvalidRequest("'steps' must list at least one {operation, params}")
    clean = []
    for index, step in enumerate(steps):
        if not isinstance(step, dict) or not isinstance(step.get("operation"), str):
            raise InvalidRequest(f'steps[{index}] must be an object {{"operation": name, "params": {{…}}}}')
        unknown = sorted(set(step) - {"operation", "params"})
        if unknown:
            raise InvalidRequest(f"steps[{index}] has unknown key(s) {unknown}; allowed: ['operation', 'params']")
        name = step["operation"]
        if name == "pipeline":
            raise InvalidRequest(
                f"steps[{index}]: a pipeline cannot contain a pipeline",
                allowed=[n for n in OPERATIONS.names() if n != "pipeline"],
            )
        try:
            params = OPERATIONS.get(name).clean_params(step.get("params"))
        except InvalidRequest as exc:
            raise InvalidRequest(f"steps[{index}] ({name}): {exc}", code=exc.code, allowed=exc.allowed) from None
        clean.append({"operation": name, "params": params})
    return clean


@OPERATIONS.register(
    "pipeline",
    Param(
        "steps",
        list,
        description=f"up to {MAX_PIPELINE_STEPS} steps {{operation, params}} applied in order "
        "in one decode → steps → encode pass",
        max_items=MAX_PIPELINE_STEPS,
        check=clean_steps,
    ),
    description="Several operations in order, with one decode and one encode.",
)
def pipeline(image: np.ndarray, *, steps: list[dict]) -> np.ndarray:
    for step in steps:
        image = OPERATIONS.get(step["operation"]).func(image, **step["params"])
    return image
