"""Image → fixed-length feature vector, for training and running scikit-learn classifiers.

numpy + Pillow only (no OpenCV, no scikit-image): the same code runs on Dask workers, where
training extracts features, and in the `ml` Lambda layer, where a trained model classifies one
image, so a model always sees features computed exactly as in training.

Every feature is `func(img: PIL.Image.Image, **params) -> 1-D float32 ndarray` whose length
depends only on the parameters (`feature_length`). What lies under full transparency never
changes a feature: `pixels` and `hog` composite over black, `color_histogram` leaves such pixels out.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from chalicelib.errors import InvalidRequest
from chalicelib.registry import INFERENCE, ML, FeatureEntry, Param, Registry

if TYPE_CHECKING:  # numpy and Pillow live in the Lambda layers, not in the api function
    import numpy as np
    from PIL import Image

FEATURES = Registry("feature", FeatureEntry)

HISTOGRAM_BINS = (2, 4, 8, 16, 32, 64, 128, 256)


def _flatten_alpha(img: Image.Image) -> Image.Image:
    if "A" not in img.mode and "transparency" not in img.info:
        return img
    from PIL import Image

    rgba = img.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _gray_square(img: Image.Image, size: int) -> np.ndarray:
    """Luma (ITU-R 601, Pillow's "L") resized to size×size, as float64 in 0..255.

    Shrinking averages areas (BOX), as the 8×8 digits of scikit-learn were made by counting
    pixels in 4×4 blocks; enlarging interpolates (BICUBIC). The aspect ratio is not kept.
    """
    import numpy as np
    from PIL import Image

    gray = _flatten_alpha(img).convert("L")
    if gray.size != (size, size):
        shrinking = gray.width >= size and gray.height >= size
        gray = gray.resize((size, size), Image.Resampling.BOX if shrinking else Image.Resampling.BICUBIC)
    return np.asarray(gray, dtype=np.float64)


@FEATURES.register(
    "pixels",
    Param("size", int, 8, "side of the square grayscale image the pixels are taken from", minimum=4, maximum=128),
    runtime=ML,
    produces_image=False,
    length=lambda size: size * size,
    decode_side=lambda size: size,
)
def pixels(img: Image.Image, *, size: int = 8) -> np.ndarray:
    """Grayscale pixels of the image resized to size×size, scaled to 0..1, row by row."""
    import numpy as np

    return (_gray_square(img, size) / 255.0).astype(np.float32).ravel()


@FEATURES.register(
    "color_histogram",
    Param("bins", int, 16, "bins per RGB channel", choices=HISTOGRAM_BINS),
    runtime=ML,
    produces_image=False,
    length=lambda bins: 3 * bins,
    # A histogram is a statistic of the whole picture: 512 px is plenty and decodes fast.
    decode_side=lambda bins: 512,
)
def color_histogram(img: Image.Image, *, bins: int = 16) -> np.ndarray:
    """Red, green and blue histograms (`bins` each), each summing to 1; transparent pixels do not count."""
    import numpy as np

    if bins not in HISTOGRAM_BINS:
        raise InvalidRequest(f"'bins' must be one of {list(HISTOGRAM_BINS)}, got {bins!r}")
    mask = None
    if "A" in img.mode or "transparency" in img.info:
        mask = img.convert("RGBA").getchannel("A").point(lambda a: 255 if a else 0)
    # Pillow counts all 256 levels per channel in C; summing neighbours gives coarser bins.
    counts = np.asarray(img.convert("RGB").histogram(mask), dtype=np.float64).reshape(3, bins, 256 // bins).sum(axis=2)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0).astype(np.float32).ravel()


def _hog_length(size: int, orientations: int, cell_size: int, block_size: int) -> int:
    blocks = size // cell_size - block_size + 1
    return blocks * blocks * block_size * block_size * orientations


def _hog_check(params: dict) -> dict:
    if params["size"] // params["cell_size"] < params["block_size"]:
        raise InvalidRequest(
            f"hog: a block of {params['block_size']}×{params['block_size']} cells of {params['cell_size']} px "
            f"does not fit in {params['size']}×{params['size']} px; lower cell_size or block_size, or raise size"
        )
    return params


@FEATURES.register(
    "hog",
    Param("size", int, 64, "side of the square grayscale image the gradients are taken from", minimum=8, maximum=256),
    Param("orientations", int, 9, "orientation bins over 0..180°", minimum=2, maximum=36),
    Param("cell_size", int, 8, "side of a cell in pixels", minimum=2, maximum=64),
    Param("block_size", int, 2, "side of a normalization block in cells", minimum=1, maximum=8),
    runtime=ML,
    produces_image=False,
    length=_hog_length,
    decode_side=lambda size, **_: size,
    check_params=_hog_check,
)
def hog(
    img: Image.Image, *, size: int = 64, orientations: int = 9, cell_size: int = 8, block_size: int = 2
) -> np.ndarray:
    """Histogram of oriented gradients (Dalal & Triggs) of the image resized to size×size.

    Computed as scikit-image's `hog(..., block_norm="L2-Hys")` does: centred differences, each
    pixel's gradient magnitude voting for one unsigned orientation bin of its cell, the cell
    histograms averaged over the cell, then every overlapping block of cells L2-Hys normalized.
    """
    _hog_check({"size": size, "cell_size": cell_size, "block_size": block_size})
    import numpy as np

    gray = _gray_square(img, size)
    g_row = np.zeros_like(gray)
    g_col = np.zeros_like(gray)
    g_row[1:-1, :] = gray[2:, :] - gray[:-2, :]
    g_col[:, 1:-1] = gray[:, 2:] - gray[:, :-2]

    cells = size // cell_size
    covered = cells * cell_size  # pixels past the last whole cell are ignored, as in scikit-image
    g_row, g_col = g_row[:covered, :covered], g_col[:covered, :covered]
    magnitude = np.hypot(g_row, g_col)
    angle = np.rad2deg(np.arctan2(g_row, g_col)) % 180.0
    # Bin i holds [i·w, (i+1)·w); an angle rounding to exactly 180° is 0°.
    edges = 180.0 / orientations * np.arange(1, orientations)
    bins = np.searchsorted(edges, angle, side="right") % orientations

    cell_index = np.arange(covered) // cell_size
    flat = ((cell_index[:, None] * cells + cell_index[None, :]) * orientations + bins).ravel()
    histogram = np.bincount(flat, weights=magnitude.ravel(), minlength=cells * cells * orientations)
    histogram = histogram.reshape(cells, cells, orientations) / (cell_size * cell_size)

    windows = np.lib.stride_tricks.sliding_window_view(histogram, (block_size, block_size), axis=(0, 1))
    blocks = np.moveaxis(windows, 2, -1)  # (block row, block col, cell row, cell col, orientation)
    eps = 1e-5
    blocks = blocks / np.sqrt((blocks**2).sum(axis=(2, 3, 4), keepdims=True) + eps**2)
    blocks = np.minimum(blocks, 0.2)
    blocks = blocks / np.sqrt((blocks**2).sum(axis=(2, 3, 4), keepdims=True) + eps**2)
    return blocks.astype(np.float32).ravel()


def _embedding_side(input_spec: dict | None, **_) -> int:
    size = (input_spec or {}).get("size") or [224, 224]
    return int(max(size))


@FEATURES.register(
    "embedding",
    Param("model", str, description="the registered embed model used as the backbone (its name)"),
    # Filled in by the service from the backbone's active version when the job is created, so the
    # job trains on that version whatever is registered later; dimensions when the job starts.
    Param("sha256", str, None, "the backbone version's artifact (filled in when the job is created)"),
    Param("input_spec", dict, None, "the backbone's input spec (filled in when the job is created)"),
    Param(
        "dimensions",
        int,
        None,
        "length of the backbone's vectors (filled in when the job starts)",
        minimum=1,
        maximum=65536,
    ),
    Param("normalize", bool, True, "L2-normalise the vectors before the classifier sees them"),
    runtime=INFERENCE,
    produces_image=False,
    length=lambda dimensions, **_: dimensions,
    decode_side=_embedding_side,
)
def embedding(
    img: Image.Image,
    *,
    model: str,
    sha256: str | None,
    input_spec: dict | None,
    dimensions: int | None,
    normalize: bool = True,
) -> np.ndarray:
    """A registered embedding model's vector for the image (transfer learning: a pretrained backbone).

    Runs on onnxruntime from the backbone's verified artifact in this machine's model cache
    (chalicelib.services.model_runs.artifact_file puts it there before extraction starts).
    """
    from chalicelib.ml.artifacts import cached_artifact
    from chalicelib.ml.onnx_runtime import OrtModel

    if not sha256 or input_spec is None:
        raise InvalidRequest(
            f"the backbone {model!r} is not resolved: no sha256 and input_spec", code="backbone_missing"
        )
    path = cached_artifact(sha256)
    if path is None:
        raise InvalidRequest(
            f"the backbone {model!r} ({sha256[:12]}…) is not in this machine's model cache", code="backbone_missing"
        )
    vector = OrtModel(path, input_spec, sha256=sha256).embed(img, normalize)
    if dimensions is not None and vector.size != dimensions:
        raise InvalidRequest(f"the backbone {model!r} gives {vector.size} values, not {dimensions}")
    return vector


def clean_feature_params(feature: str, params: dict | None) -> dict:
    """Validated parameters of a feature, defaults filled in; raises InvalidRequest."""
    entry = FEATURES.get(feature)
    return entry.clean_params(params)


def feature_length(feature: str, params: dict | None = None) -> int:
    """The length of the vectors `feature` produces with these parameters."""
    entry = FEATURES.get(feature)
    return entry.length(**clean_feature_params(feature, params))


def extract(data: bytes, feature: str, params: dict | None = None) -> np.ndarray:
    """Decode image bytes (guarded by the max_pixels setting) and compute one feature vector.

    Raises InvalidRequest for an unknown feature or bad parameters, ImageRejected for bytes
    that are not an acceptable image.
    """
    from chalicelib.config import get_settings
    from chalicelib.imaging.imageio import decode, probe

    entry = FEATURES.get(feature)
    clean = clean_feature_params(feature, params)
    max_pixels = get_settings().max_pixels
    # Big JPEGs decode at a reduced DCT scale; the short side must still cover the target side.
    info = probe(data, max_pixels=max_pixels)
    side = entry.decode_side(**clean)
    longest = math.ceil(side * max(info.width, info.height) / min(info.width, info.height))
    img = decode(data, max_pixels=max_pixels, min_longest_side=longest)
    return entry.func(img, **clean)


def extract_from_image(img: Image.Image, feature: str, params: dict | None = None) -> np.ndarray:
    """One feature vector of an already decoded picture; raises InvalidRequest like `extract`."""
    return FEATURES.get(feature).func(img, **clean_feature_params(feature, params))
