import hashlib
import io

import pytest
from PIL import Image
from sample_images import box_iou, face_composite, jpeg_bytes

from chalicelib.imaging.imageio import ImageRejected
from chalicelib.imaging.ingest import analyze_upload
from chalicelib.imaging.phash import hamming

SETTINGS = {"max_pixels": 75_000_000, "max_frames": 200, "thumbnail_sizes": (256, 1024)}


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


def test_the_images_hash_is_the_phash_analysis_and_the_same_without_it():
    data = jpeg_bytes((1600, 1200))
    analysed = analyze_upload(data, **SETTINGS, analyzers=("phash",))
    assert analysed.phash == analysed.analyses["phash"][0]["phash_int"]
    assert analyze_upload(data, **SETTINGS).phash == analysed.phash  # hashed without the analyzer


def test_too_many_frames_is_rejected():
    frames = [Image.new("L", (4, 4), i % 256) for i in range(30)]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(ImageRejected, match="frames"):
        analyze_upload(out.getvalue(), **{**SETTINGS, "max_frames": 10})


@pytest.mark.parametrize("share", [0.045, 0.06])
def test_a_small_face_in_a_large_photo_is_found_and_boxed_in_the_photos_pixels(share):
    # 4.5% of the shorter side is the smallest face ingest promises: 35 px in the 1024 px copy.
    data, (x, y, side) = face_composite((3200, 2400), face_share=share)
    outcome = analyze_upload(data, **SETTINGS, analyzers=("faces",))
    faces = outcome.analyses["faces"][0]["faces"]
    assert len(faces) == 1
    assert box_iou(faces[0]["box"], {"x": x, "y": y, "width": side, "height": side}) > 0.5


def test_ingest_finds_the_faces_a_full_resolution_search_finds():
    from chalicelib.imaging.faces import detect_faces
    from chalicelib.imaging.imageio import decode, to_array

    for share, at in ((0.05, (0.1, 0.6)), (0.08, (0.55, 0.1)), (0.3, (0.3, 0.3))):
        data, (x, y, side) = face_composite((2400, 1800), face_share=share, at=at)
        pasted = {"x": x, "y": y, "width": side, "height": side}
        # The reference searches the full-size picture down to 24-px faces (1.3% here).
        full = detect_faces(to_array(decode(data, max_pixels=SETTINGS["max_pixels"])), min_face_share=24 / 1800)
        ingest = analyze_upload(data, **SETTINGS, analyzers=("faces",)).analyses["faces"][0]["faces"]
        assert any(box_iou(pasted, f["box"]) > 0.5 for f in full), share  # the reference finds it...
        assert any(box_iou(pasted, f["box"]) > 0.5 for f in ingest), share  # ...and so does ingest


def test_analyzers_and_hash_look_at_a_copy_no_larger_than_the_analysis_side(monkeypatch):
    from chalicelib.imaging import analyzers
    from chalicelib.imaging import ingest as ingest_module
    from chalicelib.imaging.imageio import decode
    from chalicelib.imaging.phash import phash

    seen = []
    real = analyzers.image_properties
    monkeypatch.setitem(
        analyzers.ANALYZERS.get("properties").__dict__,
        "func",
        lambda image, **kw: seen.append(image.shape) or real(image, **kw),
    )
    data = jpeg_bytes((4000, 3000))
    outcome = analyze_upload(data, **SETTINGS, analyzers=("properties",))
    assert seen == [(768, 1024, 3)] and ingest_module.ANALYSIS_SIDE == 1024
    # The hash of the copy is the hash of the full picture, give or take a bit or two.
    assert hamming(outcome.phash, phash(decode(data, max_pixels=SETTINGS["max_pixels"]))) <= 3
