"""Golden tests for the image operations registry and the runner.

Each operation is compared with the same result computed another way (Pillow, scikit-image,
SciPy, numpy) by structural similarity or exact equality, or checked on a synthetic image
whose answer is known.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps
from sample_images import ASTRONAUT_FACE
from skimage.metrics import structural_similarity

from chalicelib.errors import InvalidRequest
from chalicelib.imaging import imageio
from chalicelib.imaging import operations as ops
from chalicelib.imaging.operation_runner import decode_fraction, operation_steps, output_format, run_operation
from chalicelib.imaging.operations import OPERATIONS
from chalicelib.registry import IMAGING

REPO = Path(__file__).resolve().parents[2]
MAX_PIXELS = 75_000_000
ISSUE_OPERATIONS = {
    "resize",
    "thumbnail",
    "crop",
    "smart_crop",
    "rotate",
    "auto_orient",
    "flip",
    "flop",
    "grayscale",
    "modulate",
    "gamma",
    "equalize",
    "blur",
    "median",
    "sharpen",
    "denoise",
    "edges",
    "threshold",
    "invert",
    "convert",
    "pipeline",
}


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    return structural_similarity(a, b, channel_axis=2 if a.ndim == 3 else None, data_range=255)


@pytest.fixture(scope="module")
def china() -> np.ndarray:
    from sklearn.datasets import load_sample_image

    return cv2.cvtColor(load_sample_image("china.jpg"), cv2.COLOR_RGB2BGR)  # 640×427


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    from skimage.data import astronaut

    return cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR)  # 512×512, one face


def rgb_pil(bgr: np.ndarray) -> Image.Image:
    return Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def bgr(pil: Image.Image) -> np.ndarray:
    return cv2.cvtColor(np.asarray(pil.convert("RGB")), cv2.COLOR_RGB2BGR)


def jpeg_bytes(image: np.ndarray, quality: int = 92, exif: Image.Exif | None = None) -> bytes:
    out = io.BytesIO()
    rgb_pil(image).save(out, "JPEG", quality=quality, **({"exif": exif} if exif else {}))
    return out.getvalue()


def white_square(size: int = 200, left: int = 60, right: int = 140) -> np.ndarray:
    image = np.zeros((size, size), np.uint8)
    image[left:right, left:right] = 255
    return image


# ---------------------------------------------------------------- the registry itself


def test_registry_imports_without_image_libraries():
    code = (
        "import sys; import chalicelib.imaging.operations, chalicelib.imaging.operation_runner; "
        "heavy = {'numpy', 'cv2', 'PIL', 'sklearn', 'scipy', 'skimage'} & set(sys.modules); "
        "print(sorted(heavy)); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_operation_of_the_issue_is_registered_for_the_imaging_runtime():
    assert set(OPERATIONS.names()) >= ISSUE_OPERATIONS
    assert all(entry.runtime == IMAGING for entry in OPERATIONS)


def test_parameters_are_declared_completely():
    for entry in OPERATIONS:
        assert entry.description, entry.name
        for param in entry.params:
            assert param.description, f"{entry.name}.{param.name}"
            if param.type in (int, float):
                assert param.minimum is not None and param.maximum is not None, f"{entry.name}.{param.name}"
            if param.type is str:
                assert param.choices or param.check, f"{entry.name}.{param.name} accepts any string"
    json.dumps(OPERATIONS.describe())  # the API serves it as is
    schema = OPERATIONS.get("resize").json_schema()["properties"]
    assert schema["fit"]["enum"] == list(ops.FITS) and schema["width"]["maximum"] == ops.MAX_SIDE


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "operation, params, expected",
    [
        ("sepia", {}, "allowed: ["),
        ("resize", {"width": 100, "colour": "red"}, "allowed: ['background', 'fit', 'height', 'upscale', 'width']"),
        ("resize", {"width": "big"}, "must be of type integer"),
        ("resize", {"width": 0}, "must be ≥ 1"),
        ("resize", {"width": 100, "fit": "stretch"}, "['cover', 'contain', 'fill', 'inside']"),
        ("resize", {}, "needs 'width' or 'height'"),
        ("resize", {"width": 10, "background": "red"}, "'#RRGGBB'"),
        ("blur", {"sigma": 1000}, "must be ≤ 100"),
        ("blur", {"sigma": float("nan")}, "finite"),
        ("median", {"size": 4}, "must be odd"),
        ("crop", {"x": 0}, "needs parameter 'width'"),
        ("smart_crop", {}, "either 'aspect'"),
        ("smart_crop", {"aspect": "16:9", "width": 100}, "either 'aspect'"),
        ("smart_crop", {"aspect": "wide"}, "like '16:9'"),
        ("convert", {"format": "gif"}, "['jpeg', 'png', 'webp', 'avif']"),
        ("threshold", {"method": "mean"}, "['otsu', 'binary', 'adaptive']"),
        ("pipeline", {"steps": []}, "at least one"),
        (
            "pipeline",
            {"steps": [{"operation": "grayscale"}, {"operation": "sepia"}]},
            "steps[1] (sepia): unknown operation",
        ),
        (
            "pipeline",
            {"steps": [{"operation": "blur", "params": {"sigma": -1}}]},
            "steps[0] (blur): 'sigma' must be ≥ 0.1",
        ),
        ("pipeline", {"steps": [{"operation": "resize", "params": {}}]}, "steps[0] (resize): 'resize' needs"),
        ("pipeline", {"steps": [{"operation": "pipeline", "params": {"steps": []}}]}, "cannot contain a pipeline"),
        ("pipeline", {"steps": ["grayscale"]}, "steps[0] must be an object"),
        ("pipeline", {"steps": [{"operation": "flip", "parameters": {}}]}, "unknown key(s) ['parameters']"),
        ("pipeline", {"steps": [{"operation": "flip"}] * 21}, "at most 20"),
    ],
)
def test_bad_requests_are_refused_with_what_is_allowed(operation, params, expected):
    with pytest.raises(InvalidRequest) as caught:
        operation_steps(operation, params)
    assert expected in str(caught.value)


def test_direct_calls_without_a_size_are_refused_like_requests(china):
    # Code that calls the functions without the registry's checks gets the same error, not a TypeError.
    with pytest.raises(InvalidRequest, match="needs 'width' or 'height'"):
        ops.resize(china)
    with pytest.raises(InvalidRequest, match="either 'aspect'"):
        ops.smart_crop(china, width=100)
    assert ops.resize(china, height=100).shape[0] == 100  # one side is enough


def test_unknown_operation_lists_every_operation():
    with pytest.raises(InvalidRequest) as caught:
        OPERATIONS.get("sepia")
    assert caught.value.code == "unknown_operation" and set(caught.value.allowed) == set(OPERATIONS.names())


def test_pipeline_steps_are_cleaned_with_defaults_and_cleaning_again_changes_nothing():
    steps = operation_steps(
        "pipeline",
        {
            "steps": [
                {"operation": "resize", "params": {"width": 64}},
                {"operation": "smart_crop", "params": {"aspect": "16 / 9"}},
            ]
        },
    )
    assert steps[0] == {
        "operation": "resize",
        "params": {"width": 64, "height": None, "fit": "cover", "upscale": False, "background": "#000000"},
    }
    assert steps[1]["params"]["aspect"] == "16:9"
    assert operation_steps("pipeline", {"steps": steps}) == steps


# ---------------------------------------------------------------- geometry


def test_resize_one_side_keeps_the_aspect_ratio_and_matches_pillow(china):
    out = ops.resize(china, width=320)
    assert out.shape == (214, 320, 3)
    expected = bgr(rgb_pil(china).resize((320, 214), Image.Resampling.LANCZOS))
    assert ssim(out, expected) > 0.95


@pytest.mark.parametrize(
    "fit, size", [("cover", (200, 200)), ("contain", (200, 200)), ("fill", (200, 200)), ("inside", (200, 133))]
)
def test_resize_fits(china, fit, size):
    out = ops.resize(china, width=200, height=200, fit=fit)
    assert (out.shape[1], out.shape[0]) == size
    if fit == "fill":
        assert ssim(out, bgr(rgb_pil(china).resize((200, 200), Image.Resampling.LANCZOS))) > 0.9
    if fit == "cover":  # scaled to 200 px high, then the middle 200 columns
        scaled = bgr(rgb_pil(china).resize((300, 200), Image.Resampling.LANCZOS))
        assert ssim(out, scaled[:, 50:250]) > 0.9
    if fit == "contain":  # 200×133 picture on black bars above and below
        assert out[:33].max() == 0 and out[-33:].max() == 0 and out[100].mean() > 20


def test_resize_never_enlarges_unless_asked(china):
    assert ops.resize(china, width=2000).shape == china.shape
    assert ops.resize(china, width=2000, upscale=True).shape == (1334, 2000, 3)
    assert ops.resize(china, width=1000, height=100, fit="cover").shape == (100, 640, 3)


def test_resize_contain_with_transparent_background_adds_alpha(china):
    out = ops.resize(china, width=100, height=100, fit="contain", background="#ffffff00")
    assert out.shape == (100, 100, 4) and out[0, 0, 3] == 0 and out[50, 50, 3] == 255


def test_thumbnail_matches_pillow_and_never_enlarges(china):
    out = ops.thumbnail(china, size=160)
    assert out.shape == (107, 160, 3)
    assert ssim(out, bgr(imageio.fit_within(rgb_pil(china), 160))) > 0.95
    assert ops.thumbnail(china, size=1000).shape == china.shape


def test_crop_cuts_the_box_and_clamps_a_box_partly_outside(china):
    assert np.array_equal(ops.crop(china, x=10, y=20, width=30, height=40), china[20:60, 10:40])
    assert ops.crop(china, x=600, y=400, width=100, height=100).shape == (27, 40, 3)
    with pytest.raises(InvalidRequest, match="outside the 640×427 image"):
        ops.crop(china, x=640, y=0, width=10, height=10)


def test_smart_crop_keeps_the_salient_detail():
    rng = np.random.default_rng(1)
    image = np.full((200, 400, 3), 128, np.uint8)
    image[70:130, 300:360] = rng.integers(0, 256, (60, 60, 3))  # busy patch on a flat picture
    x, y, width, height = ops.smart_crop_box(image, 1.0, "saliency")
    assert (width, height) == (200, 200) and y == 0
    assert x <= 300 and x + width >= 360
    assert ops.smart_crop_box(image, 1.0, "center") == (100, 0, 200, 200)


def test_smart_crop_keeps_the_face(astronaut):
    face = ASTRONAUT_FACE
    x, _y, width, height = ops.smart_crop_box(astronaut, 1 / 5, "auto")
    assert (width, height) == (102, 512)
    assert x <= face["x"] and x + width >= face["x"] + face["width"]
    assert ops.smart_crop_box(astronaut, 1 / 5, "center")[0] > face["x"]  # the middle would cut the face
    out = ops.smart_crop(astronaut, width=90, height=160)
    assert out.shape == (160, 90, 3)


def test_rotate_quarter_turns_are_exact_and_clockwise(china):
    assert np.array_equal(ops.rotate(china, angle=90), np.rot90(china, k=-1))
    assert np.array_equal(ops.rotate(china, angle=-90), np.rot90(china, k=1))
    assert np.array_equal(ops.rotate(china, angle=180), china[::-1, ::-1])


def test_rotate_any_angle_expands_the_canvas_like_pillow(astronaut):
    out = ops.rotate(astronaut, angle=30)
    expected = rgb_pil(astronaut).rotate(-30, Image.Resampling.BILINEAR, expand=True)
    assert (out.shape[1], out.shape[0]) == expected.size
    assert ssim(out, bgr(expected)) > 0.9
    assert out[0, 0].max() == 0  # corners filled with the background
    assert ops.rotate(astronaut, angle=30, expand=False).shape == astronaut.shape
    assert ops.rotate(astronaut, angle=45, background="#00000000")[0, 0, 3] == 0


@pytest.mark.parametrize("orientation", range(1, 9))
def test_auto_orient_matches_pillow_exif_transpose(china, orientation):
    stored = rgb_pil(china[:90, :160])
    exif = stored.getexif()
    exif[0x0112] = orientation
    stored.info["exif"] = exif.tobytes()
    expected = bgr(ImageOps.exif_transpose(stored))
    assert np.array_equal(ops.auto_orient(china[:90, :160], orientation=orientation), expected)


def test_flip_and_flop(china):
    assert np.array_equal(ops.flip(china), china[::-1])
    assert np.array_equal(ops.flop(china), china[:, ::-1])


# ---------------------------------------------------------------- colour and tone


def test_grayscale_matches_pillow_and_keeps_alpha(china):
    expected = np.asarray(rgb_pil(china).convert("L"))
    assert np.abs(ops.grayscale(china).astype(int) - expected).max() <= 1
    with_alpha = np.dstack([china, np.full(china.shape[:2], 77, np.uint8)])
    out = ops.grayscale(with_alpha)
    assert out.shape == with_alpha.shape and (out[:, :, 3] == 77).all()
    assert (out[:, :, 0] == out[:, :, 2]).all()


def test_modulate_matches_pillow_image_enhance(china):
    enhancers = {
        "brightness": ImageEnhance.Brightness,
        "contrast": ImageEnhance.Contrast,
        "saturation": ImageEnhance.Color,
    }
    for name, factor in (("brightness", 1.2), ("contrast", 0.8), ("contrast", 1.7), ("saturation", 1.5)):
        expected = bgr(enhancers[name](rgb_pil(china)).enhance(factor))
        assert np.abs(ops.modulate(china, **{name: factor}).astype(int) - expected).max() <= 1, name  # rounding
    chained = rgb_pil(china)
    for name, factor in (("brightness", 1.2), ("contrast", 0.8), ("saturation", 1.5)):
        chained = enhancers[name](chained).enhance(factor)
    diff = np.abs(ops.modulate(china, brightness=1.2, contrast=0.8, saturation=1.5).astype(int) - bgr(chained))
    assert diff.max() <= 4 and diff.mean() < 1
    assert np.array_equal(ops.modulate(china), china)


def test_gamma_on_a_known_gradient():
    ramp = np.tile(np.arange(256, dtype=np.uint8), (4, 1))
    out = ops.gamma(ramp, gamma=2.0)
    assert out[0, 0] == 0 and out[0, 255] == 255 and out[0, 64] == round(255 * (64 / 255) ** 0.5)
    from skimage.exposure import adjust_gamma

    assert np.abs(out.astype(int) - adjust_gamma(ramp, 0.5)).max() <= 1
    assert (np.diff(out[0].astype(int)) >= 0).all()


def test_equalize_spreads_a_low_contrast_picture(astronaut):
    dull = (cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY) * 0.25 + 100).astype(np.uint8)
    out = ops.equalize(dull)
    assert out.shape == dull.shape and out.std() > 1.7 * dull.std()
    assert ops.equalize(dull, clip_limit=8.0).std() > out.std()
    color = ops.equalize(cv2.cvtColor(dull, cv2.COLOR_GRAY2BGR))
    assert color.shape == (512, 512, 3) and color.std() > 1.7 * dull.std()


def test_invert_is_the_negative_and_keeps_alpha(china):
    assert np.array_equal(ops.invert(china), 255 - china)
    rgba = np.dstack([china, np.full(china.shape[:2], 9, np.uint8)])
    assert (ops.invert(rgba)[:, :, 3] == 9).all()


# ---------------------------------------------------------------- filters


def test_blur_matches_scikit_image_gaussian(china):
    from skimage.filters import gaussian

    expected = gaussian(china, sigma=2.0, mode="mirror", truncate=3.0, channel_axis=-1, preserve_range=True)
    assert ssim(ops.blur(china, sigma=2.0), np.round(expected).astype(np.uint8)) > 0.99


def test_median_matches_scipy_and_removes_salt_and_pepper(china):
    from scipy.ndimage import median_filter

    expected = median_filter(china, size=(5, 5, 1), mode="nearest")
    assert np.array_equal(ops.median(china, size=5), expected)
    flat = np.full((50, 50), 100, np.uint8)
    flat[::7, ::5] = 255
    assert (ops.median(flat) == 100).all()


def test_sharpen_matches_scikit_image_unsharp_mask(china):
    from skimage.filters import unsharp_mask

    expected = np.dstack([unsharp_mask(china[:, :, c], radius=1.5, amount=1.0, preserve_range=True) for c in range(3)])
    expected = np.clip(np.round(expected), 0, 255).astype(np.uint8)
    assert ssim(ops.sharpen(china, sigma=1.5, amount=1.0), expected) > 0.98
    flat = np.full((40, 40), 90, np.uint8)
    flat[10:30, 10:30] = 94  # a difference below the threshold is left alone
    assert np.array_equal(ops.sharpen(flat, threshold=10), flat)


def test_denoise_brings_a_noisy_picture_closer_to_the_clean_one():
    clean = cv2.cvtColor(np.tile(np.linspace(40, 200, 160), (120, 1)).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    clean[30:90, 50:110] = (30, 200, 60)
    noise = np.random.default_rng(2).normal(0, 20, clean.shape)
    noisy = np.clip(clean + noise, 0, 255).astype(np.uint8)
    assert cv2.PSNR(ops.denoise(noisy, strength=15), clean) > cv2.PSNR(noisy, clean) + 6
    gray = noisy[:, :, 1]
    assert cv2.PSNR(ops.denoise(gray, strength=15), clean[:, :, 1]) > cv2.PSNR(gray, clean[:, :, 1]) + 6


def test_edges_of_a_white_square_lie_on_its_border():
    square = white_square()
    out = ops.edges(square)
    assert out.dtype == np.uint8 and set(np.unique(out)) == {0, 255}
    ys, xs = np.nonzero(out)
    distance = np.minimum(np.minimum(np.abs(ys - 60), np.abs(ys - 139)), np.minimum(np.abs(xs - 60), np.abs(xs - 139)))
    assert distance.max() <= 1
    assert 4 * 75 < len(ys) < 4 * 90  # one pixel wide all round
    assert out[100, 55:66].any() and out[55:66, 100].any() and out[100, 134:145].any() and out[134:145, 100].any()


def test_threshold_otsu_recovers_a_two_level_picture_and_agrees_with_scikit_image(astronaut):
    rng = np.random.default_rng(3)
    mask = white_square() > 0
    picture = np.where(mask, 190, 60).astype(np.int16) + rng.integers(-20, 21, mask.shape)
    assert np.array_equal(ops.threshold(picture.astype(np.uint8)) > 0, mask)
    from skimage.filters import threshold_otsu

    gray = cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY)
    agreement = ((ops.threshold(astronaut, method="otsu") > 0) == (gray > threshold_otsu(gray))).mean()
    assert agreement > 0.99


def test_threshold_binary_uses_the_given_level():
    ramp = np.tile(np.arange(256, dtype=np.uint8), (2, 1))
    out = ops.threshold(ramp, method="binary", value=100)
    assert (out[:, :101] == 0).all() and (out[:, 101:] == 255).all()


def test_threshold_adaptive_finds_dark_marks_under_uneven_light():
    background = np.tile(np.linspace(30, 230, 300), (200, 1))
    picture = background.copy()
    marks = [(50, 40), (50, 140), (50, 240), (140, 90), (140, 200)]
    for y, x in marks:
        picture[y : y + 12, x : x + 12] -= 25
    picture = picture.astype(np.uint8)
    out = ops.threshold(picture, method="adaptive", block_size=31, offset=5)
    for y, x in marks:
        assert (out[y + 2 : y + 10, x + 2 : x + 10] == 0).all()
    marked = np.zeros(picture.shape, bool)
    for y, x in marks:
        marked[max(0, y - 20) : y + 32, max(0, x - 20) : x + 32] = True
    assert (out[~marked] == 255).all()
    assert not np.array_equal(ops.threshold(picture) > 0, out > 0)  # one global level cannot do this


def test_convert_leaves_the_pixels_alone(china):
    assert np.array_equal(ops.convert(china, format="webp"), china)


def test_pipeline_applies_steps_in_order(china):
    steps = operation_steps(
        "pipeline",
        {
            "steps": [
                {"operation": "crop", "params": {"width": 100, "height": 50}},
                {"operation": "flop"},
                {"operation": "grayscale"},
            ]
        },
    )
    out = ops.pipeline(china, steps=steps)
    assert np.array_equal(out, ops.grayscale(china[:50, :100][:, ::-1]))


# ---------------------------------------------------------------- decode planning and the runner


def _steps(*pairs):
    return [{"operation": name, "params": OPERATIONS.get(name).clean_params(params)} for name, params in pairs]


def test_decode_fraction_follows_the_steps_to_the_first_resample():
    assert decode_fraction(_steps(("resize", {"width": 1024})), 4000, 3000) == (0.256, 0)
    assert decode_fraction(
        _steps(
            ("grayscale", {}), ("crop", {"x": 0, "y": 0, "width": 2000, "height": 1000}), ("thumbnail", {"size": 500})
        ),
        4000,
        3000,
    ) == (0.25, 2)
    assert decode_fraction(_steps(("rotate", {"angle": 90}), ("resize", {"width": 1000})), 4000, 3000) == (1 / 3, 1)
    assert decode_fraction(_steps(("blur", {}), ("resize", {"width": 100})), 4000, 3000) == (1.0, 0)
    assert decode_fraction(_steps(("flip", {}), ("convert", {"format": "png"})), 4000, 3000) == (1.0, 2)
    assert decode_fraction(_steps(("resize", {"width": 8000})), 4000, 3000) == (1.0, 0)


@pytest.fixture(scope="module")
def big_jpeg(china) -> bytes:
    return jpeg_bytes(cv2.resize(china, (1600, 1068), interpolation=cv2.INTER_CUBIC))


@pytest.fixture
def decode_sizes(monkeypatch):
    sizes = []
    decode = imageio.decode

    def recording_decode(data, **kwargs):
        sizes.append(kwargs.get("min_longest_side"))
        return decode(data, **kwargs)

    monkeypatch.setattr(imageio, "decode", recording_decode)
    return sizes


def test_resize_decodes_a_jpeg_at_a_reduced_size_and_matches_a_full_decode(big_jpeg, decode_sizes):
    out = run_operation(big_jpeg, "resize", {"width": 400}, max_pixels=MAX_PIXELS)
    assert (out.format, out.width, out.height, out.content_type) == ("jpeg", 400, 267, "image/jpeg")
    assert out.size_bytes == len(out.data) and decode_sizes == [400]
    full = Image.open(io.BytesIO(big_jpeg)).convert("RGB").resize((400, 267), Image.Resampling.LANCZOS)
    assert ssim(bgr(Image.open(io.BytesIO(out.data))), bgr(full)) > 0.9


def test_crop_box_is_in_full_size_pixels_even_when_decoded_smaller(big_jpeg, decode_sizes):
    box = {"x": 800, "y": 300, "width": 640, "height": 480}
    out = run_operation(
        big_jpeg,
        "pipeline",
        {"steps": [{"operation": "crop", "params": box}, {"operation": "thumbnail", "params": {"size": 160}}]},
        max_pixels=MAX_PIXELS,
    )
    assert decode_sizes == [400] and (out.width, out.height) == (160, 120)
    full = Image.open(io.BytesIO(big_jpeg)).convert("RGB").crop((800, 300, 1440, 780))
    expected = bgr(full.resize((160, 120), Image.Resampling.LANCZOS))
    assert ssim(bgr(Image.open(io.BytesIO(out.data))), expected) > 0.85


def test_crop_box_is_in_upright_pixels_of_an_exif_rotated_photo():
    upright = np.zeros((400, 300, 3), np.uint8)  # portrait, a red box at x 200..280, y 40..100
    upright[40:100, 200:280] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned 90° anticlockwise; the viewer turns it back clockwise
    stored = jpeg_bytes(np.rot90(upright, k=1), exif=exif)
    for params in ({"x": 210, "y": 50, "width": 60, "height": 40},):
        out = run_operation(stored, "crop", params, max_pixels=MAX_PIXELS)
        pixels = bgr(Image.open(io.BytesIO(out.data)))
        assert (out.width, out.height) == (60, 40) and pixels[:, :, 2].mean() > 200 and pixels[:, :, 1].mean() < 40
    out = run_operation(
        stored,
        "pipeline",
        {
            "steps": [
                {"operation": "crop", "params": {"x": 200, "y": 40, "width": 80, "height": 60}},
                {"operation": "resize", "params": {"width": 20}},
            ]
        },
        max_pixels=MAX_PIXELS,
    )
    pixels = bgr(Image.open(io.BytesIO(out.data)))
    assert (out.width, out.height) == (20, 15) and pixels[2:-2, 2:-2, 2].mean() > 200


def png_bytes(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def test_output_format_follows_convert_else_the_source_else_png(china):
    small = rgb_pil(china[:64, :64])
    assert run_operation(png_bytes(small), "flip", {}, max_pixels=MAX_PIXELS).format == "png"
    webp = run_operation(png_bytes(small), "convert", {"format": "webp", "quality": 70}, max_pixels=MAX_PIXELS)
    assert (webp.format, webp.content_type) == ("webp", "image/webp")
    assert Image.open(io.BytesIO(webp.data)).format == "WEBP"
    gif = io.BytesIO()
    small.save(gif, "GIF")
    assert run_operation(gif.getvalue(), "flop", {}, max_pixels=MAX_PIXELS).format == "png"
    assert output_format([], "image/jpeg") == ("jpeg", 85) and output_format([], "JPG") == ("jpeg", 85)


def test_jpeg_output_drops_alpha_onto_white_and_png_keeps_it():
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[:, 16:] = (255, 0, 0, 255)  # left half transparent, right half opaque red
    data = png_bytes(Image.fromarray(rgba))
    as_jpeg = Image.open(io.BytesIO(run_operation(data, "convert", {"format": "jpeg"}, max_pixels=MAX_PIXELS).data))
    assert as_jpeg.mode == "RGB" and np.asarray(as_jpeg)[:, :12].min() > 245
    as_png = Image.open(io.BytesIO(run_operation(data, "invert", {}, max_pixels=MAX_PIXELS).data))
    assert as_png.mode == "RGBA" and np.array_equal(np.asarray(as_png)[:, :, 3], rgba[:, :, 3])


def test_a_grey_result_is_encoded_with_one_channel(china):
    out = run_operation(
        png_bytes(rgb_pil(china)), "pipeline", {"steps": [{"operation": "threshold"}]}, max_pixels=MAX_PIXELS
    )
    result = Image.open(io.BytesIO(out.data))
    assert result.mode == "L" and set(np.unique(np.asarray(result))) == {0, 255}


def test_the_pixel_limit_holds_for_the_source_and_for_results(big_jpeg):
    with pytest.raises(imageio.ImageRejected, match="more than the limit"):
        run_operation(big_jpeg, "flip", {}, max_pixels=1_000_000)
    with pytest.raises(InvalidRequest, match="more than the limit"):
        run_operation(big_jpeg, "resize", {"width": 4000, "upscale": True}, max_pixels=5_000_000)


def test_a_bad_request_is_refused_before_the_image_is_read():
    with pytest.raises(InvalidRequest):
        run_operation(b"", "sepia", {}, max_pixels=MAX_PIXELS)


EXAMPLES = {
    "resize": {"width": 50, "height": 50, "fit": "contain"},
    "thumbnail": {"size": 40},
    "crop": {"x": 5, "y": 5, "width": 30, "height": 20},
    "smart_crop": {"aspect": "1:1"},
    "rotate": {"angle": 33.5, "background": "#ff000080"},
    "auto_orient": {"orientation": 6},
    "modulate": {"saturation": 0},
    "gamma": {"gamma": 0.5},
    "median": {"size": 5},
    "denoise": {"strength": 5},
    "threshold": {"method": "adaptive"},
    "convert": {"format": "webp", "quality": 50},
    "pipeline": {"steps": [{"operation": "thumbnail", "params": {"size": 48}}, {"operation": "edges"}]},
}


@pytest.mark.parametrize("operation", OPERATIONS.names())
def test_every_operation_runs_end_to_end(china, operation):
    data = jpeg_bytes(cv2.resize(china, (96, 64), interpolation=cv2.INTER_AREA))
    out = run_operation(data, operation, EXAMPLES.get(operation, {}), max_pixels=MAX_PIXELS)
    decoded = Image.open(io.BytesIO(out.data))
    assert decoded.size == (out.width, out.height) and out.format == decoded.format.lower()
    assert out.format == ("webp" if operation == "convert" else "jpeg")
