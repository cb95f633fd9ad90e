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

from chalicelib.imaging.operations import filters, geometry, output, saliency, tone
from chalicelib.imaging.operations.common import (
    DEFAULT_QUALITY,
    FITS,
    MAX_SIDE,
    OPERATIONS,
    OUTPUT_FORMATS,
    Resamples,
    SameScale,
    resample,
)
from chalicelib.imaging.operations.filters import blur, denoise, edges, median, sharpen, threshold
from chalicelib.imaging.operations.geometry import auto_orient, crop, flip, flop, resize, rotate, thumbnail
from chalicelib.imaging.operations.output import convert, pipeline
from chalicelib.imaging.operations.saliency import smart_crop, smart_crop_box
from chalicelib.imaging.operations.tone import equalize, gamma, grayscale, invert, modulate

__all__ = [
    "DEFAULT_QUALITY",
    "FITS",
    "MAX_SIDE",
    "OPERATIONS",
    "OUTPUT_FORMATS",
    "Resamples",
    "SameScale",
    "auto_orient",
    "blur",
    "convert",
    "crop",
    "denoise",
    "edges",
    "equalize",
    "filters",
    "flip",
    "flop",
    "gamma",
    "geometry",
    "grayscale",
    "invert",
    "median",
    "modulate",
    "output",
    "pipeline",
    "resample",
    "resize",
    "rotate",
    "saliency",
    "sharpen",
    "smart_crop",
    "smart_crop_box",
    "threshold",
    "thumbnail",
    "tone",
]
