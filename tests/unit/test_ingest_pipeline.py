import hashlib
import io

import pytest
from PIL import Image

from chalicelib.ml.imageio import ImageRejected
from chalicelib.ml.ingest import analyze_upload
from chalicelib.ml.phash import hamming
from sample_images import jpeg_bytes

SETTINGS = dict(max_pixels=75_000_000, max_frames=200, thumbnail_sizes=(256, 1024))


def test_a_photo_gets_facts_hashes_and_two_thumbnails():
    data = jpeg_bytes((4000, 3000))
    outcome = analyze_upload(data, **SETTINGS)
    assert (outcome.format, outcome.width, outcome.height) == ("jpeg", 4000, 3000)
    assert outcome.sha256 == hashlib.sha256(data).hexdigest()
    sizes = {t.size: Image.open(io.BytesIO(t.data)).size for t in outcome.thumbnails}
    assert sizes == {1024: (1024, 768), 256: (256, 192)}
    assert all(Image.open(io.BytesIO(t.data)).format == "JPEG" for t in outcome.thumbnails)


def test_rotated_photo_reports_the_displayed_size_and_thumbnails_upright():
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "Pixelake Camera"
    outcome = analyze_upload(jpeg_bytes((1600, 1200), exif=exif), **SETTINGS)
    assert (outcome.width, outcome.height) == (1200, 1600)
    assert outcome.thumbnails[0].width == 768 and outcome.thumbnails[0].height == 1024
    assert outcome.metadata["orientation"] == 6
    assert outcome.metadata["exif"]["make"] == "Pixelake Camera"


def test_perceptual_hash_survives_resize_and_recompression():
    original = analyze_upload(jpeg_bytes(), **SETTINGS).phash
    copy = analyze_upload(jpeg_bytes((320, 213), quality=40), **SETTINGS).phash
    assert hamming(original, copy) <= 6


def test_too_many_frames_is_rejected():
    frames = [Image.new("L", (4, 4), i % 256) for i in range(30)]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(ImageRejected, match="frames"):
        analyze_upload(out.getvalue(), **{**SETTINGS, "max_frames": 10})
