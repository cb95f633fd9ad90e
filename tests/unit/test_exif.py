from PIL import Image

from chalicelib.ml.exif import exif_summary


def photo_with_exif():
    img = Image.new("RGB", (8, 8))
    exif = img.getexif()
    exif[0x010F] = "Canon\x00"
    exif[0x0110] = "EOS R5" + "x" * 1000
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = "2024:05:17 14:03:22"
    sub[0x927C] = b"\x00" * 5000  # MakerNote: a binary blob we must drop
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (52.0, 31.0, 12.0), 3: "W", 4: (1.0, 30.0, 0.0), 5: 0, 6: 35.5})
    out = __import__("io").BytesIO()
    img.save(out, "JPEG", exif=exif)
    return Image.open(out)


def test_exif_summary_is_clean_json_with_gps_and_capture_time():
    summary = exif_summary(photo_with_exif())
    assert summary["make"] == "Canon"
    assert len(summary["model"]) == 200
    assert summary["captured_at"] == "2024-05-17T14:03:22"
    assert summary["gps"]["latitude"] == round(52 + 31 / 60 + 12 / 3600, 7)
    assert summary["gps"]["longitude"] == -1.5
    assert summary["gps"]["altitude"] == 35.5
    assert all(not isinstance(v, bytes) for v in summary.values())


def test_no_exif_gives_an_empty_summary():
    assert exif_summary(Image.new("RGB", (2, 2))) == {}
