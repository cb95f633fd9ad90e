"""Feature vectors: fixed lengths, known answers on synthetic images, HOG against scikit-image."""

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata
from skimage.feature import hog as skimage_hog
from sklearn.datasets import load_sample_image

from chalicelib.config import reset_settings
from chalicelib.errors import InvalidRequest
from chalicelib.imaging.imageio import ImageRejected
from chalicelib.ml import features
from chalicelib.ml.features import FEATURES, clean_feature_params, extract, feature_length

REPO = Path(__file__).resolve().parents[2]


def png(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def jpeg(img: Image.Image, quality: int = 92) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()


@pytest.fixture(scope="module")
def photos() -> dict[str, Image.Image]:
    return {
        "china": Image.fromarray(load_sample_image("china.jpg")),
        "astronaut": Image.fromarray(skdata.astronaut()),
        "coffee": Image.fromarray(skdata.coffee()),
        "camera": Image.fromarray(skdata.camera()),  # grayscale
    }


def test_feature_modules_import_without_heavy_libraries():
    code = textwrap.dedent("""
        import sys
        import chalicelib.ml.features, chalicelib.ml.training, chalicelib.ml.distributed
        heavy = {"numpy", "PIL", "cv2", "sklearn", "scipy", "skops", "dask", "distributed"}
        loaded = sorted(heavy & {name.split(".")[0] for name in sys.modules})
        assert not loaded, loaded
        assert chalicelib.ml.features.FEATURES.names() == ["color_histogram", "embedding", "hog", "pixels"]
        assert len(chalicelib.ml.training.ALGORITHMS.names()) == 7
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "feature, params",
    [
        ("pixels", {}),
        ("pixels", {"size": 16}),
        ("color_histogram", {}),
        ("color_histogram", {"bins": 4}),
        ("hog", {}),
        ("hog", {"size": 48, "orientations": 6, "cell_size": 6, "block_size": 3}),
    ],
)
def test_every_image_gives_a_vector_of_the_declared_length(photos, feature, params):
    length = feature_length(feature, params)
    odd = {
        "tiny": Image.new("RGB", (3, 5), (10, 200, 30)),
        "wide gray": Image.new("L", (300, 20), 128),
        "rgba": Image.new("RGBA", (40, 40), (255, 0, 0, 128)),
    }
    for name, img in {**photos, **odd}.items():
        vector = extract(png(img), feature, params)
        assert vector.shape == (length,), name
        assert vector.dtype == np.float32
        assert np.isfinite(vector).all()


def test_lengths_follow_the_parameters():
    assert feature_length("pixels", {"size": 8}) == 64
    assert feature_length("color_histogram", {"bins": 32}) == 96
    # 64 px / 8 px cells = 8 cells → 7×7 blocks of 2×2 cells × 9 orientations
    assert feature_length("hog", {}) == 7 * 7 * 2 * 2 * 9
    assert feature_length("hog", {"size": 32, "cell_size": 4, "block_size": 1, "orientations": 12}) == 8 * 8 * 12


def test_pixels_known_answer():
    # Left half white, right half black: each 2×2 box of the 16×16 image lands on one output pixel.
    arr = np.zeros((16, 16), np.uint8)
    arr[:, :8] = 255
    vector = extract(png(Image.fromarray(arr)), "pixels", {"size": 8}).reshape(8, 8)
    assert np.array_equal(vector[:, :4], np.ones((8, 4), np.float32))
    assert np.array_equal(vector[:, 4:], np.zeros((8, 4), np.float32))


def test_pixels_keep_an_image_of_the_target_size_unchanged():
    arr = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    vector = features.pixels(Image.fromarray(arr), size=8)
    assert np.allclose(vector, arr.ravel() / 255.0)


def test_pixels_of_a_big_jpeg_decoded_reduced_match_a_full_decode(photos):
    # extract() decodes big JPEGs at a reduced DCT scale; the features barely change.
    big = photos["china"].resize((2560, 1708), Image.Resampling.BICUBIC)
    reduced = extract(jpeg(big), "pixels", {"size": 16})
    full = features.pixels(Image.open(io.BytesIO(jpeg(big))).convert("RGB"), size=16)
    assert np.abs(reduced - full).max() < 0.04


def test_color_histogram_known_answers():
    red = features.color_histogram(Image.new("RGB", (10, 10), (255, 0, 0)), bins=4)
    assert red.tolist() == [0, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0]

    # Left half (100, 0, 0), right half (0, 0, 200): bins of 64 levels.
    arr = np.zeros((10, 10, 3), np.uint8)
    arr[:, :5, 0] = 100
    arr[:, 5:, 2] = 200
    halves = features.color_histogram(Image.fromarray(arr), bins=4).reshape(3, 4)
    assert halves[0].tolist() == [0.5, 0.5, 0, 0]  # red: 0 and 100
    assert halves[1].tolist() == [1, 0, 0, 0]  # green: always 0
    assert halves[2].tolist() == [0.5, 0, 0, 0.5]  # blue: 0 and 200


def test_color_histogram_ignores_transparent_pixels():
    arr = np.zeros((10, 10, 4), np.uint8)
    arr[:, :, 1] = 255  # green everywhere...
    arr[:, :5, 3] = 255  # ...but only the left half is visible, the rest is red and transparent
    arr[:, 5:, 0] = 255
    vector = extract(png(Image.fromarray(arr, "RGBA")), "color_histogram", {"bins": 2}).reshape(3, 2)
    assert vector.tolist() == [[1, 0], [0, 1], [1, 0]]
    empty = features.color_histogram(Image.new("RGBA", (4, 4), (255, 255, 255, 0)), bins=8)
    assert not empty.any()


def test_each_channel_histogram_sums_to_one(photos):
    vector = extract(jpeg(photos["coffee"]), "color_histogram", {"bins": 16}).reshape(3, 16)
    assert np.allclose(vector.sum(axis=1), 1.0, atol=1e-6)


def test_color_histogram_bins_must_divide_the_levels():
    with pytest.raises(InvalidRequest, match="bins"):
        clean_feature_params("color_histogram", {"bins": 10})


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"size": 128, "orientations": 8, "cell_size": 16, "block_size": 3},
        {"size": 50, "orientations": 12, "cell_size": 6, "block_size": 1},  # 50 px leave 2 px outside the cells
    ],
)
@pytest.mark.parametrize("photo", ["astronaut", "coffee", "camera"])
def test_hog_matches_scikit_image(photos, photo, params):
    clean = clean_feature_params("hog", params)
    img = photos[photo]
    ours = features.hog(img, **clean)
    gray = np.asarray(img.convert("L").resize((clean["size"],) * 2, Image.Resampling.BOX))
    reference = skimage_hog(
        gray,
        orientations=clean["orientations"],
        pixels_per_cell=(clean["cell_size"],) * 2,
        cells_per_block=(clean["block_size"],) * 2,
        block_norm="L2-Hys",
    )
    assert ours.shape == reference.shape
    assert np.abs(ours - reference).max() < 1e-4


def test_hog_orientation_known_answers():
    vertical_edge = np.zeros((32, 32), np.uint8)
    vertical_edge[:, 16:] = 255  # intensity changes along columns: a 0° gradient
    horizontal_edge = vertical_edge.T.copy()  # changes along rows: 90°
    params = {"size": 32, "orientations": 9, "cell_size": 8, "block_size": 1}
    for arr, expected_bin in ((vertical_edge, 0), (horizontal_edge, 4)):
        cells = features.hog(Image.fromarray(arr), **params).reshape(-1, 9)
        energy = cells.sum(axis=0)
        assert energy.argmax() == expected_bin
        assert energy[expected_bin] == pytest.approx(energy.sum())
    flat = features.hog(Image.new("L", (32, 32), 90), **params)
    assert not flat.any()


def test_hog_refuses_blocks_larger_than_the_image():
    with pytest.raises(InvalidRequest, match="does not fit"):
        clean_feature_params("hog", {"size": 16, "cell_size": 8, "block_size": 3})
    with pytest.raises(InvalidRequest):
        feature_length("hog", {"size": 16, "cell_size": 8, "block_size": 3})


def test_unknown_feature_and_bad_parameters_are_invalid_requests():
    with pytest.raises(InvalidRequest) as info:
        extract(b"", "sift", {})
    assert info.value.code == "unknown_feature"
    assert info.value.allowed == ["color_histogram", "embedding", "hog", "pixels"]
    with pytest.raises(InvalidRequest, match="size"):
        clean_feature_params("pixels", {"size": 1000})
    with pytest.raises(InvalidRequest, match="unknown parameter"):
        clean_feature_params("pixels", {"bins": 8})


def test_extract_rejects_what_is_not_an_acceptable_image(monkeypatch):
    with pytest.raises(ImageRejected, match="not a supported image"):
        extract(b"hello, I am text" * 10, "pixels", {})
    truncated = png(Image.fromarray(skdata.astronaut()))[:5000]
    with pytest.raises(ImageRejected):
        extract(truncated, "pixels", {})
    monkeypatch.setenv("PIXELAKE_MAX_PIXELS", "1000")
    reset_settings()
    try:
        with pytest.raises(ImageRejected, match="limit"):
            extract(png(Image.new("L", (40, 40))), "pixels", {})
    finally:
        monkeypatch.delenv("PIXELAKE_MAX_PIXELS")
        reset_settings()


def test_every_feature_is_declared_for_its_runtime():
    for entry in FEATURES:
        # The hand-made features are numpy + Pillow (the ml layer); a backbone's embedding needs onnxruntime.
        assert entry.runtime == ("inference" if entry.name == "embedding" else "ml")
        assert entry.produces_image is False
        assert entry.description
        for param in entry.params:
            if param.type in (int, float):
                assert param.choices is not None or (param.minimum is not None and param.maximum is not None), param
