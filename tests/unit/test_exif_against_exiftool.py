"""The EXIF summary against exiftool (Debian's libimage-exiftool-perl, `make system-packages`) on
real camera and phone files that packages ship: piexif's camera JPEGs (Canon, Casio, Olympus,
Panasonic, Pentax/Ricoh, Sigma, Sony) and pillow-heif's phone and camera HEIC/HIFs (Apple iPhone
8 Plus/XS/13 Pro and Vision Pro, Xiaomi, Samsung Galaxy S25 Ultra, Sony α7 III/IV).

Fields: make, model, capture time (to the second; EXIF's, else XMP's), GPS latitude and longitude (to 1e-6°) and
orientation. A field counts when either side has a value; agreement is the share of those
where both say the same. The test prints the figure and each disagreement.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from package_samples import sdist_file, sdist_members

from chalicelib.imaging import imageio
from chalicelib.imaging.exif import exif_summary

# piexif's 01.jpg is made by its authors (make "Make", a 2099 date, a broken GPS block); the
# others are real cameras'. notjpeg.jpg is empty.
_NOT_CAMERA_FILES = {"tests/images/01.jpg", "tests/images/notjpeg.jpg"}
FIELDS = ("make", "model", "captured_at", "latitude", "longitude", "orientation")


def corpus() -> dict[str, bytes]:
    files = {
        f"piexif/{member}": sdist_file("piexif", member)
        for member in sdist_members("piexif", "tests/images", (".jpg", ".tif"))
        if member not in _NOT_CAMERA_FILES
    }
    heifs = [
        *sdist_members("pillow-heif", "tests/images/heif_other", (".heic", ".hif")),
        "tests/images/heif_special/guitar_cw90.hif",
        "tests/images/heif_special/xiaomi.heic",
        "tests/images/heif_special/aux_YCbCr.heic",
    ]
    files.update({f"pillow-heif/{member}": sdist_file("pillow-heif", member) for member in heifs})
    return files


def exiftool_fields(paths: list[str]) -> dict[str, dict]:
    result = subprocess.run(
        [
            "exiftool",
            "-json",
            "-n",
            "-Make",
            "-Model",
            "-DateTimeOriginal",
            "-XMP-photoshop:DateCreated",
            "-XMP-xmp:CreateDate",
            "-GPSLatitude",
            "-GPSLongitude",
            "-Orientation",
            *paths,
        ],
        capture_output=True,
        text=True,
        check=False,  # exits 1 when some file has none of the tags
    )
    found = {}
    for entry in json.loads(result.stdout):
        found[entry["SourceFile"]] = {
            "make": entry.get("Make"),
            "model": entry.get("Model"),
            # Capture time: EXIF's, else XMP's in the order exiftool's own composites use.
            "captured_at": _iso_second(
                entry.get("DateTimeOriginal") or entry.get("DateCreated") or entry.get("CreateDate")
            ),
            "latitude": entry.get("GPSLatitude"),
            "longitude": entry.get("GPSLongitude"),
            "orientation": entry.get("Orientation"),
        }
    return found


def _iso_second(value) -> str | None:
    if not isinstance(value, str) or len(value) < 19:
        return None
    return value[:10].replace(":", "-") + "T" + value[11:19]


def ours(data: bytes) -> dict:
    imageio.probe(data, max_pixels=10**9)  # registers the HEIF plugin, as ingest does
    summary = exif_summary(data)
    gps = summary.get("gps") or {}
    return {
        "make": summary.get("make"),
        "model": summary.get("model"),
        "captured_at": (summary.get("captured_at") or "")[:19] or None,
        "latitude": gps.get("latitude"),
        "longitude": gps.get("longitude"),
        "orientation": summary.get("orientation"),
    }


def same(field: str, a, b) -> bool:
    if field in ("latitude", "longitude") and a is not None and b is not None:
        return abs(float(a) - float(b)) <= 1e-6
    if isinstance(a, str) and isinstance(b, str):
        return a.strip() == b.strip()
    return a == b


def agreement(tmp_path) -> tuple[int, int, list[str], int]:
    files = corpus()
    paths = {}
    for index, (name, data) in enumerate(files.items()):
        path = tmp_path / f"{index:02d}-{name.rsplit('/', 1)[-1]}"
        path.write_bytes(data)
        paths[str(path)] = name
    reference = exiftool_fields(list(paths))
    agreed = counted = 0
    differences = []
    for path, name in paths.items():
        theirs, mine = reference[path], ours(files[name])
        for field in FIELDS:
            if theirs[field] is None and mine[field] is None:
                continue
            counted += 1
            if same(field, theirs[field], mine[field]):
                agreed += 1
            else:
                differences.append(f"{name} {field}: exiftool {theirs[field]!r}, ours {mine[field]!r}")
    return agreed, counted, differences, len(files)


def test_exif_agrees_with_exiftool_on_real_camera_files(tmp_path):
    if shutil.which("exiftool") is None:
        pytest.fail("exiftool is missing: `make system-packages` installs libimage-exiftool-perl")
    agreed, counted, differences, files = agreement(tmp_path)
    share = agreed / counted
    print(f"\nEXIF agreement with exiftool: {agreed}/{counted} fields = {share:.1%} on {files} files")
    for line in differences:
        print("  ", line)
    assert files >= 25 and counted >= 80
    assert share >= 0.99, differences


def test_xmp_gives_capture_time_and_orientation_where_exif_lacks_them(tmp_path):
    from photo_samples import astronaut

    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" xmlns:exif="http://ns.adobe.com/exif/1.0/"'
        b' tiff:Orientation="6" exif:DateTimeOriginal="2024-05-06T07:08:09.120+02:00"/></rdf:RDF></x:xmpmeta>'
    )
    out = tmp_path / "xmp-only.jpg"
    astronaut().crop((0, 0, 300, 512)).resize((1200, 2048)).save(out, "JPEG", xmp=xmp)
    summary = exif_summary(out.read_bytes())
    assert summary["orientation"] == 6 and summary["captured_at"] == "2024-05-06T07:08:09"
    reference = exiftool_fields([str(out)])[str(out)]
    assert (reference["orientation"], reference["captured_at"]) == (6, "2024-05-06T07:08:09")
    # Both decoders turn it upright by the XMP orientation (Pillow reads tiff:Orientation too).
    assert imageio.decode(out.read_bytes(), max_pixels=10**8).size == (2048, 1200)
    fast = imageio.decode_array(out.read_bytes(), max_pixels=10**8, min_longest_side=1024)
    assert fast.orientation == 6 and fast.pixels.shape[1] > fast.pixels.shape[0]


def _exiftool_all(path) -> dict:
    result = subprocess.run(["exiftool", "-json", "-a", "-G1", str(path)], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)[0]


def test_outputs_carry_no_location_or_serials_and_metadata_keeps_them(tmp_path):
    from chalicelib.imaging.ingest import analyze_upload
    from chalicelib.imaging.operation_runner import run_operation

    # A Sony α7 IV's HIF with its body serial in EXIF, and an iPhone HEIC with GPS.
    sony = sdist_file("pillow-heif", "tests/images/heif_special/guitar_cw90.hif")
    iphone = sdist_file("pillow-heif", "tests/images/heif_other/pug.heic")
    # Each output format once (a 12 MP HEIC decode each); the 33 MP Sony file once.
    for data, secret, formats in ((sony, "body_serial", ("jpeg",)), (iphone, "gps", ("webp", "avif", "png"))):
        outcome = analyze_upload(data, max_pixels=10**9, max_frames=200, thumbnail_sizes=(256,))
        assert outcome.metadata["exif"].get(secret), f"the owner's metadata keeps {secret}"
        outputs = [thumb.data for thumb in outcome.thumbnails] + [
            run_operation(data, "convert", {"format": fmt, "keep_profile": True}, max_pixels=10**9).data
            for fmt in formats
        ]
        for index, output in enumerate(outputs):
            path = tmp_path / f"{secret}-{index}.bin"
            path.write_bytes(output)
            tags = _exiftool_all(path)
            leaked = sorted(k for k in tags if k.split(":")[0] in ("[GPS]", "GPS") or "Serial" in k or "GPS" in k)
            assert not leaked, (secret, index, leaked)
            assert not any(k.startswith(("ExifIFD:", "IFD0:", "XMP")) for k in tags), sorted(tags)
