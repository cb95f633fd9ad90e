"""Built-in analyzers on real photos (skimage, sklearn samples) and synthetic images with known answers."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import ExifTags, Image
from sample_images import ASTRONAUT_FACE, box_iou
from skimage import data as skdata
from sklearn.datasets import load_sample_image

from chalicelib.config import get_settings
from chalicelib.errors import InvalidRequest
from chalicelib.imaging import imageio
from chalicelib.imaging.analyzers import ANALYZERS, VIEWS, AnalysisInput, analyze, exif_summary
from chalicelib.imaging.colors import CSS3_COLORS, css_names
from chalicelib.imaging.phash import hamming
from chalicelib.imaging.segmentation import segment_image


def bgr(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgb[:, :, ::-1])


def jpeg_bytes(image_bgr: np.ndarray, quality: int = 90, exif: Image.Exif | None = None) -> bytes:
    out = io.BytesIO()
    imageio.from_array(image_bgr).save(out, "JPEG", quality=quality, **({"exif": exif} if exif else {}))
    return out.getvalue()


def as_json(data: dict) -> dict:
    """Results are stored as JSONB: plain types, no NaN."""
    return json.loads(json.dumps(data, allow_nan=False))


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return bgr(skdata.astronaut())


# --- registry ----------------------------------------------------------------------------------


def test_registry_imports_without_heavy_libraries():
    code = (
        "import sys, chalicelib.imaging.analyzers as a, chalicelib.ml.runtimes;"
        "heavy = [m for m in ('numpy', 'cv2', 'PIL', 'sklearn', 'scipy', 'skops') if m in sys.modules];"
        "print(a.ANALYZERS.names(), heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['faces', 'metadata', 'phash', 'properties', 'segment'] []"


def test_every_entry_declares_a_known_view_and_a_schema():
    for entry in ANALYZERS:
        assert entry.takes in VIEWS
        assert entry.produces_image is (entry.name == "segment")
        json.dumps(entry.describe())
    assert set(get_settings().ingest_analyzers) <= set(ANALYZERS.names())


def test_unknown_analyzer_and_bad_params_are_invalid_requests(astronaut):
    source = AnalysisInput(array=astronaut)
    with pytest.raises(InvalidRequest) as unknown:
        analyze("resnet50", source)
    assert unknown.value.code == "unknown_analyzer"
    with pytest.raises(InvalidRequest, match="method"):
        analyze("segment", source, {"method": "watershed"})
    with pytest.raises(InvalidRequest, match="colors"):
        analyze("properties", source, {"colors": 50})


# --- faces -------------------------------------------------------------------------------------


def test_faces_finds_the_astronaut_face(astronaut):
    result = analyze("faces", AnalysisInput.from_bytes(jpeg_bytes(astronaut))).data
    assert result["count"] == 1
    face = result["faces"][0]
    assert box_iou(face["box"], ASTRONAUT_FACE) > 0.6
    prediction = result["predictions"][0]
    assert prediction["label"] == "face" and prediction["box"] == face["box"] and 0.9 < prediction["confidence"] <= 1
    assert as_json(result) == result


def test_face_searches_in_concurrent_threads_each_get_their_own_answer(astronaut):
    # The local stack's ingest and task pollers (and a Dask worker's threads) search at once.
    from concurrent.futures import ThreadPoolExecutor

    from chalicelib.imaging.faces import detect_faces

    pictures = [astronaut, cv2.flip(astronaut, 1), np.ascontiguousarray(skdata.coffee()[:, :, ::-1])]
    expected = [detect_faces(picture) for picture in pictures]
    with ThreadPoolExecutor(max_workers=3) as pool:
        runs = [pool.submit(lambda i=i: [detect_faces(pictures[i]) for _ in range(8)]) for i in range(3)]
        for i, run in enumerate(runs):
            assert run.result() == [expected[i]] * 8, i
    assert len(expected[0]) == len(expected[1]) == 1 and expected[2] == []


def test_face_landmarks_lie_inside_the_box_where_a_face_has_them(astronaut):
    face = analyze("faces", AnalysisInput(array=astronaut)).data["faces"][0]
    box, points = face["box"], face["landmarks"]
    assert set(points) == {"left_eye", "right_eye", "nose", "mouth_left", "mouth_right"}
    for point in points.values():
        assert box["x"] <= point["x"] <= box["x"] + box["width"] and box["y"] <= point["y"] <= box["y"] + box["height"]
    assert points["left_eye"]["x"] < points["nose"]["x"] < points["right_eye"]["x"]
    assert points["mouth_left"]["x"] < points["mouth_right"]["x"]
    eyes = max(points["left_eye"]["y"], points["right_eye"]["y"])
    assert eyes < points["nose"]["y"] < min(points["mouth_left"]["y"], points["mouth_right"]["y"])


def test_faces_none_on_coffee_and_min_confidence_filters(astronaut):
    assert analyze("faces", AnalysisInput(array=bgr(skdata.coffee()))).data["count"] == 0
    # With the top half of her face hidden, it is still found, with less certainty.
    hidden = astronaut.copy()
    hidden[67 : 67 + 46, 177:270] = 0
    found = analyze("faces", AnalysisInput(array=hidden)).data["predictions"]
    assert [0.8 < p["confidence"] < 0.99 for p in found] == [True]
    assert analyze("faces", AnalysisInput(array=hidden), {"min_confidence": 0.99}).data["predictions"] == []


def test_a_false_face_that_fails_the_mirrored_second_look_is_dropped():
    """Part of scikit-image's stereo motorcycle passes the cascade at 0.957, above every face the
    cut at 0.96 would cost; mirrored, O-Net no longer takes it for a face. Real faces (the
    astronaut, LFW's crops) stay, with the confidence they had."""
    from chalicelib.imaging.faces import detect_faces

    motorcycle = bgr(skdata.stereo_motorcycle()[0])
    assert [f["confidence"] > 0.95 for f in detect_faces(motorcycle, mirror_check=False)] == [True]
    assert detect_faces(motorcycle) == []
    lfw = (skdata.lfw_subset()[:20] * 255).astype(np.uint8)
    for picture in [bgr(skdata.astronaut())] + [cv2.resize(c, (100, 100), interpolation=cv2.INTER_CUBIC) for c in lfw]:
        assert detect_faces(picture) == detect_faces(picture, mirror_check=False)


def test_faces_smallest_face_is_a_share_of_the_shorter_side(astronaut):
    # The astronaut's face is 18% of the shorter side: a search from 45% up does not see it (down
    # to about half the smallest size a face can still pass, if hair and shoulders frame it).
    assert analyze("faces", AnalysisInput(array=astronaut), {"min_face": 0.45}).data["count"] == 0
    assert analyze("faces", AnalysisInput(array=astronaut), {"min_face": 0.15}).data["count"] == 1
    with pytest.raises(InvalidRequest, match="min_face"):
        analyze("faces", AnalysisInput(array=astronaut), {"min_face": 0.001})
    with pytest.raises(InvalidRequest, match="min_neighbors"):  # the Haar cascade's parameter is gone
        analyze("faces", AnalysisInput(array=astronaut), {"min_neighbors": 3})


def test_a_face_in_a_panorama_wider_than_opencvs_remap_limit(astronaut):
    # cv2.remap, which cuts the crops the networks see, refuses images of 32767 px or more.
    panorama = np.zeros((600, 34000, 3), np.uint8)
    panorama[44:556, 20000:20512] = astronaut
    faces = analyze("faces", AnalysisInput(array=panorama)).data["faces"]
    moved = {**ASTRONAUT_FACE, "x": ASTRONAUT_FACE["x"] + 20000, "y": ASTRONAUT_FACE["y"] + 44}
    assert len(faces) == 1 and box_iou(faces[0]["box"], moved) > 0.6


# --- properties --------------------------------------------------------------------------------


def test_dominant_colors_of_two_flat_colours():
    image = np.zeros((100, 200, 3), np.uint8)
    image[:, :140] = (0, 0, 255)  # 70% red (BGR)
    image[:, 140:] = (255, 0, 0)  # 30% blue
    colours = analyze("properties", AnalysisInput(array=image)).data["dominant_colors"]
    assert [c["css_name"] for c in colours] == ["red", "blue"]
    assert colours[0]["hex"] == "#ff0000" and colours[1]["hex"] == "#0000ff"
    assert colours[0]["pixel_percentage"] == pytest.approx(70, abs=1)
    assert colours[1]["pixel_percentage"] == pytest.approx(30, abs=1)


def test_dominant_colors_clusters_noisy_colours_and_ignores_transparency():
    rng = np.random.default_rng(0)
    image = np.zeros((120, 120, 4), np.uint8)
    image[:, :, 3] = 255
    image[:60, :, :3] = (0, 128, 0)  # green, 50%
    image[60:, :60, :3] = (0, 165, 255)  # orange, 25%
    image[60:, 60:, 3] = 0  # transparent, 25%: does not count
    noisy = image.astype(np.int16)
    noisy[:, :, :3] += rng.normal(0, 6, (120, 120, 3)).astype(np.int16)
    image = np.clip(noisy, 0, 255).astype(np.uint8)
    colours = analyze("properties", AnalysisInput(array=image), {"colors": 2}).data["dominant_colors"]
    assert [c["css_name"] for c in colours] == ["green", "orange"]
    assert colours[0]["pixel_percentage"] == pytest.approx(66.7, abs=2)


def test_css_names_are_the_147_css3_colours_and_nearest_in_lab():
    assert len(CSS3_COLORS) == 147
    for name in ("red", "navy", "rebeccapurple"):
        assert (name in CSS3_COLORS) is (name != "rebeccapurple")
    assert css_names(np.array([[30, 105, 210], [253, 253, 253], [10, 10, 10]])) == ["chocolate", "white", "black"]


def test_brightness_contrast_and_noise_have_known_values():
    black, white = np.zeros((64, 64), np.uint8), np.full((64, 64), 255, np.uint8)
    assert analyze("properties", AnalysisInput(array=black)).data["brightness"] == 0
    assert analyze("properties", AnalysisInput(array=white)).data["brightness"] == 100
    halves = np.hstack([black, white])
    result = analyze("properties", AnalysisInput(array=halves)).data
    assert result["contrast"] == pytest.approx(100)
    assert result["noise"] == pytest.approx(0, abs=0.01)  # a single straight edge is not noise
    gray = np.full((400, 400), 128.0) + np.linspace(-40, 40, 400)[None, :]
    noisy = np.clip(gray + np.random.default_rng(1).normal(0, 10, gray.shape), 0, 255).astype(np.uint8)
    assert analyze("properties", AnalysisInput(array=noisy)).data["noise"] == pytest.approx(10, rel=0.15)


def test_sharpness_drops_when_the_photo_is_blurred(astronaut):
    sharp = analyze("properties", AnalysisInput(array=astronaut)).data
    blurred = analyze("properties", AnalysisInput(array=cv2.GaussianBlur(astronaut, (0, 0), 3))).data
    assert sharp["sharpness"] > 80 > 50 > blurred["sharpness"]
    assert sharp["laplacian_variance"] > 10 * blurred["laplacian_variance"]
    assert 0 <= sharp["brightness"] <= 100 and 0 <= sharp["contrast"] <= 100
    assert as_json(sharp) == sharp


# --- phash -------------------------------------------------------------------------------------


def test_phash_matches_a_recompressed_copy_and_not_another_photo(astronaut):
    original = analyze("phash", AnalysisInput(array=astronaut)).data
    smaller = cv2.resize(astronaut, (300, 300), interpolation=cv2.INTER_AREA)
    copy = analyze("phash", AnalysisInput.from_bytes(jpeg_bytes(smaller, quality=40))).data
    other = analyze("phash", AnalysisInput(array=bgr(load_sample_image("china.jpg")))).data
    assert hamming(original["phash_int"], copy["phash_int"]) <= 8
    assert hamming(original["phash_int"], other["phash_int"]) >= 20
    assert int(original["phash"], 16) == original["phash_int"] & 0xFFFFFFFFFFFFFFFF
    assert len(original["phash"]) == 16 and -(2**63) <= original["phash_int"] < 2**63


# --- metadata ----------------------------------------------------------------------------------


def camera_exif() -> Image.Exif:
    from PIL.TiffImagePlugin import IFDRational

    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Canon\x00"
    exif[ExifTags.Base.Model] = "EOS R5 " + "x" * 300
    exif[ExifTags.Base.Orientation] = 6
    exif[ExifTags.Base.Software] = "firmware 1.8"
    exif[ExifTags.Base.DateTime] = "2024:06:02 18:00:00"
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    sub[ExifTags.Base.DateTimeOriginal] = "2024:06:01 14:30:05"
    sub[ExifTags.Base.OffsetTimeOriginal] = "+02:00"
    sub[ExifTags.Base.SubsecTimeOriginal] = "25"
    sub[ExifTags.Base.ExposureTime] = IFDRational(1, 250)
    sub[ExifTags.Base.FNumber] = IFDRational(28, 10)
    sub[ExifTags.Base.ISOSpeedRatings] = 200
    sub[ExifTags.Base.FocalLength] = IFDRational(35, 1)
    sub[ExifTags.Base.LensModel] = "RF24-105mm F4 L IS USM"
    sub[ExifTags.Base.MakerNote] = b"\x00\x01binary-blob" * 20
    sub[ExifTags.Base.BodySerialNumber] = "012345678"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "S"
    gps[ExifTags.GPS.GPSLatitude] = (IFDRational(33, 1), IFDRational(51, 1), IFDRational(3564, 100))
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (IFDRational(151, 1), IFDRational(12, 1), IFDRational(3, 1))
    gps[ExifTags.GPS.GPSAltitudeRef] = b"\x00"
    gps[ExifTags.GPS.GPSAltitude] = IFDRational(585, 10)
    return exif


def test_metadata_reads_camera_time_exposure_and_gps_from_the_file():
    image = np.zeros((60, 80, 3), np.uint8)
    source = AnalysisInput.from_bytes(jpeg_bytes(image, exif=camera_exif()))
    assert source.pil.size == (60, 80)  # decoding turned it upright (orientation 6)...
    result = analyze("metadata", source).data
    assert result["format"] == "JPEG"
    exif = result["exif"]
    assert exif["orientation"] == 6  # ...but the analyzer reads the file as stored
    assert exif["make"] == "Canon" and exif["model"].startswith("EOS R5 ") and len(exif["model"]) == 128
    assert exif["lens_model"] == "RF24-105mm F4 L IS USM"
    assert exif["captured_at"] == "2024-06-01T14:30:05.250000+02:00"
    assert exif["modified_at"] == "2024-06-02T18:00:00"
    assert exif["exposure_time_s"] == 0.004 and exif["exposure_time"] == "1/250"
    assert (exif["f_number"], exif["iso"], exif["focal_length_mm"]) == (2.8, 200, 35.0)
    assert exif["gps"] == {
        "latitude": pytest.approx(-33.8599),
        "longitude": pytest.approx(151.200833),
        "altitude_m": 58.5,
    }
    assert as_json(result) == result
    flat = json.dumps(result)
    assert "binary-blob" not in flat  # no MakerNote
    # The serial is the owner's to see (metadata is theirs alone); outputs carry no EXIF at all
    # (tests/unit/test_exif_against_exiftool.py checks them with exiftool).
    assert result["exif"]["body_serial"] == "012345678"


def test_exif_summary_without_exif_or_with_garbage_is_empty():
    plain = jpeg_bytes(np.zeros((8, 8, 3), np.uint8))
    assert exif_summary(plain) == {}
    assert exif_summary(Image.open(io.BytesIO(plain))) == {}
    assert exif_summary(b"not an image") == {}
    assert analyze("metadata", AnalysisInput(array=np.zeros((8, 8, 3), np.uint8))).data["exif"] == {}


# --- segmentation ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def square_on_white() -> np.ndarray:
    """A navy 80×60 rectangle at (70, 50) on a white 200×160 canvas, with a little noise."""
    image = np.full((160, 200, 3), 245, np.uint8)
    image[50:110, 70:150] = (110, 20, 20)
    noise = np.random.default_rng(2).normal(0, 4, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


SQUARE_SHARE = 100 * 80 * 60 / (200 * 160)
SQUARE_BOX = {"x": 70, "y": 50, "width": 80, "height": 60}


def test_kmeans_segments_a_two_region_image(square_on_white):
    labels, stats = segment_image(square_on_white, "kmeans", k=2)
    assert labels.shape == square_on_white.shape[:2] and labels.dtype == np.uint8
    background, square = stats
    assert background["label"] == 0 and background["pixel_percentage"] == pytest.approx(100 - SQUARE_SHARE, abs=0.5)
    assert square["pixel_percentage"] == pytest.approx(SQUARE_SHARE, abs=0.5)
    assert square["bbox"] == SQUARE_BOX
    assert square["name"] == "midnightblue" and background["name"] == "whitesmoke"
    assert (labels[50:110, 70:150] == 1).mean() > 0.99


def test_kmeans_with_more_clusters_than_colours_keeps_only_real_segments():
    image = np.zeros((20, 20, 3), np.uint8)
    image[:, 10:] = 255
    labels, stats = segment_image(image, "kmeans", k=8)
    assert len(stats) == 2 and sorted(np.unique(labels)) == [0, 1]


def test_threshold_and_grabcut_find_the_square(square_on_white):
    _labels, stats = segment_image(square_on_white, "threshold", invert=True)
    assert stats[1]["name"] == "foreground" and stats[1]["bbox"] == SQUARE_BOX
    assert 20 < stats[1]["threshold"] < 240
    _labels, stats = segment_image(square_on_white, "grabcut", iterations=3, margin=0.1)
    foreground = stats[1]
    assert foreground["pixel_percentage"] == pytest.approx(SQUARE_SHARE, abs=2)
    assert all(abs(foreground["bbox"][k] - SQUARE_BOX[k]) <= 3 for k in SQUARE_BOX)


def test_segment_analyzer_returns_a_mask_image(square_on_white):
    output = analyze("segment", AnalysisInput(array=square_on_white), {"method": "threshold", "invert": True})
    assert output.image.shape == square_on_white.shape[:2] and set(np.unique(output.image)) == {0, 255}
    assert [s["mask_value"] for s in output.data["segments"]] == [0, 255]
    assert output.image[80, 100] == 255 and output.image[5, 5] == 0
    assert (output.data["width"], output.data["height"]) == (200, 160)
    assert as_json(output.data) == output.data
    png = imageio.encode(imageio.from_array(output.image), "PNG")
    assert imageio.probe(png, max_pixels=10**6).mode == "L"


def test_one_decode_serves_every_ingest_analyzer(astronaut):
    source = AnalysisInput.from_bytes(jpeg_bytes(astronaut))
    results = {name: analyze(name, source).data for name in get_settings().ingest_analyzers}
    assert set(results) == {"properties", "faces", "phash"} and results["faces"]["count"] == 1
    assert source.array.shape == (512, 512, 3)
