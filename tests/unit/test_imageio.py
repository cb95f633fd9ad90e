import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from sample_images import jpeg_bytes, png_claiming_size

from chalicelib.imaging import imageio
from chalicelib.imaging.imageio import ImageRejected

LIMIT = 75_000_000


def test_probe_reads_the_header_of_a_photo():
    info = imageio.probe(jpeg_bytes(), max_pixels=LIMIT)
    assert (info.format, info.width, info.height, info.mode) == ("JPEG", 640, 427, "RGB")
    assert info.content_type == "image/jpeg"


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty"),
        (b"<!DOCTYPE html><html><script>alert(1)</script></html>", "HTML"),
        (b'<svg xmlns="http://www.w3.org/2000/svg"></svg>', "SVG"),
        (b"just some text, not an image at all", "not a supported image"),
    ],
)
def test_probe_rejects_what_is_not_an_image(data, reason):
    with pytest.raises(ImageRejected, match=reason):
        imageio.probe(data, max_pixels=LIMIT)


def test_a_fresh_process_refuses_text_and_reads_a_jpeg_without_loading_libheif():
    # pi-heif's plugin is registered only for HEIF bytes; a process that has not met one (a new
    # Dask worker, a cold Lambda) must still refuse a text file with the reason, not a KeyError.
    code = (
        "import sys\n"
        "from chalicelib.imaging import imageio\n"
        "try:\n"
        "    imageio.probe(b'just some text, not an image at all', max_pixels=10**6)\n"
        "except imageio.ImageRejected as exc:\n"
        "    print(exc)\n"
        "from sample_images import jpeg_bytes\n"
        "print(imageio.decode(jpeg_bytes(), max_pixels=10**7).size)\n"
        "print('pi_heif' in sys.modules)\n"
    )
    tests = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests.parent), str(tests)])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    refused, size, heif_loaded = result.stdout.splitlines()
    assert "not a supported image" in refused
    assert size == "(640, 427)"
    assert heif_loaded == "False"


def test_a_pixel_bomb_is_rejected_from_its_header_without_decoding():
    bomb = png_claiming_size(50_000, 50_000)
    assert len(bomb) < 200
    with pytest.raises(ImageRejected, match="50000×50000 pixels, more than the limit"):
        imageio.decode(bomb, max_pixels=LIMIT)


def test_a_truncated_jpeg_fails_with_a_reason():
    data = jpeg_bytes()
    with pytest.raises(ImageRejected, match="damaged or truncated"):
        imageio.decode(data[: len(data) // 2], max_pixels=LIMIT)


def test_reduced_decode_covers_the_requested_size_and_no_more_than_needed():
    data = jpeg_bytes((4000, 3000))
    img = imageio.decode(data, max_pixels=LIMIT, min_longest_side=1024)
    # DCT scaling gives 1/2 (2000 px) here: the largest scale step still ≥ 1024 px.
    assert img.size == (2000, 1500)
    assert img.info["original_size"] == (4000, 3000)
    full = imageio.decode(data, max_pixels=LIMIT)
    assert full.size == (4000, 3000)


def test_exif_orientation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    img = imageio.decode(jpeg_bytes(exif=exif), max_pixels=LIMIT)
    assert img.size == (427, 640)
    assert img.info["orientation"] == 6


@pytest.mark.parametrize("mode", ["CMYK", "I;16", "LA", "P"])
def test_unusual_modes_are_normalized_to_8_bit(mode):
    img = Image.new(mode, (10, 10))
    out = io.BytesIO()
    img.save(out, "TIFF" if mode in ("CMYK", "I;16") else "PNG")
    decoded = imageio.decode(out.getvalue(), max_pixels=LIMIT)
    assert decoded.mode in ("RGB", "RGBA", "L")


@pytest.mark.parametrize(
    "head, expected",
    [
        (b"\xff\xd8\xff\xe0", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"RIFF\x00\x00\x00\x00AVI LIST", None),
        (b"GIF89a", "image/gif"),
        (b"<svg", None),
    ],
)
def test_sniff_content_type_by_magic_bytes(head, expected):
    assert imageio.sniff_content_type(head) == expected


def test_round_trip_between_pillow_and_opencv_channel_order():
    img = Image.new("RGB", (4, 2), (255, 0, 0))
    arr = imageio.to_array(img)
    assert tuple(arr[0, 0]) == (0, 0, 255)  # BGR
    assert imageio.from_array(arr).getpixel((0, 0)) == (255, 0, 0)


def _ssim(a, b) -> float:
    from skimage.metrics import structural_similarity

    return structural_similarity(a, b, channel_axis=2 if a.ndim == 3 else None, data_range=255)


def test_array_decode_uses_libjpeg_turbos_finer_scales_and_matches_pillow():
    import cv2

    data = jpeg_bytes((4000, 3000))
    pixels, orientation, _ = imageio.decode_array(data, max_pixels=LIMIT, min_longest_side=1024)
    # 3/8 (1500 px) is the smallest M/8 scale still ≥ 1024 px; Pillow's draft stops at 1/2.
    assert pixels.shape == (1125, 1500, 3) and orientation is None
    reference = imageio.to_array(imageio.decode(data, max_pixels=LIMIT).resize((1500, 1125), Image.Resampling.LANCZOS))
    assert _ssim(pixels, reference) > 0.95  # BGR, the same picture
    assert cv2.mean(pixels)[:3] == pytest.approx(cv2.mean(reference)[:3], abs=2)


def test_array_decode_of_grey_cmyk_and_small_jpegs():
    grey = io.BytesIO()
    Image.open(io.BytesIO(jpeg_bytes((2000, 1500)))).convert("L").save(grey, "JPEG")
    # 1/4 would be 500 px, short of 512: 3/8 it is, one grey channel.
    assert imageio.decode_array(grey.getvalue(), max_pixels=LIMIT, min_longest_side=512)[0].shape == (563, 750)
    cmyk = io.BytesIO()
    Image.open(io.BytesIO(jpeg_bytes((800, 600)))).convert("CMYK").save(cmyk, "JPEG")
    pixels, _, _ = imageio.decode_array(cmyk.getvalue(), max_pixels=LIMIT, min_longest_side=400)
    assert pixels.shape == (300, 400, 3)  # Pillow converts CMYK at full size, then it is shrunk to the side asked
    small = imageio.decode_array(jpeg_bytes((640, 427)), max_pixels=LIMIT, min_longest_side=1024)[0]
    assert small.shape == (427, 640, 3)  # never enlarged


def test_array_decode_refuses_a_truncated_jpeg_with_a_reason():
    data = jpeg_bytes((4000, 3000))
    with pytest.raises(ImageRejected, match="damaged or truncated"):
        imageio.decode_array(data[: len(data) // 2], max_pixels=LIMIT, min_longest_side=1024)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_array_orientation_matches_pillows_exif_transpose(orientation):
    import numpy as np
    from PIL import ImageOps

    exif = Image.Exif()
    exif[0x0112] = orientation
    source = np.random.default_rng(orientation).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(source).save(out, "PNG", exif=exif)
    expected = imageio.to_array(ImageOps.exif_transpose(Image.open(io.BytesIO(out.getvalue()))))
    oriented = imageio.orient_array(imageio.to_array(Image.fromarray(source)), imageio.exif_orientation(out.getvalue()))
    assert np.array_equal(oriented, expected)


@pytest.mark.parametrize("side", [1024, 500, 100, 24])
def test_shrinking_an_array_matches_an_area_average(side):
    import cv2

    pixels = imageio.to_array(imageio.decode(jpeg_bytes((1500, 1125)), max_pixels=LIMIT))
    small = imageio.shrink_array(pixels, side)
    assert max(small.shape[:2]) == side
    reference = cv2.resize(pixels, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_AREA)
    assert _ssim(small, reference) > 0.97
    assert imageio.shrink_array(pixels, 2000) is pixels  # never enlarged
