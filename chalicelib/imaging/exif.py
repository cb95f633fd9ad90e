"""A safe, clean subset of an image's EXIF as plain JSON.

Only the tags a user searches or shows are kept (camera, lens and their serial numbers, capture
time, exposure, GPS), each converted to a JSON type: rationals to floats, dates to ISO-8601, GPS
to signed decimal degrees and metres. This goes to images.metadata, which only the image's owner
reads; what Pixelake writes (thumbnails, results) is encoded from pixels and carries no EXIF at
all, so no location or serial leaves with it. Binary blobs (MakerNote, thumbnails, UserComment)
and unknown tags are never copied; strings are stripped of NULs and capped. A malformed tag is
skipped, never raised: EXIF is written by every camera firmware there is. Where EXIF lacks the
capture time or orientation, the XMP packet's are used (HEIF's EXIF item is read like JPEG's).
"""

from __future__ import annotations

import io
import math
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

MAX_STRING = 128

# Output key → tag name in Pillow's ExifTags.Base, read from IFD0 or the Exif sub-IFD.
_TEXT_TAGS = {
    "make": "Make",
    "model": "Model",
    "lens_make": "LensMake",
    "lens_model": "LensModel",
    "software": "Software",
    "artist": "Artist",
    "copyright": "Copyright",
    "description": "ImageDescription",
    "body_serial": "BodySerialNumber",
    "lens_serial": "LensSerialNumber",
}
_NUMBER_TAGS = {
    "exposure_time_s": "ExposureTime",
    "f_number": "FNumber",
    "iso": "ISOSpeedRatings",
    "focal_length_mm": "FocalLength",
    "focal_length_35mm": "FocalLengthIn35mmFilm",
    "exposure_bias_ev": "ExposureBiasValue",
    "flash": "Flash",
    "orientation": "Orientation",
}
_INTEGER_KEYS = {"iso", "focal_length_35mm", "flash", "orientation"}
# Capture time tag → (its UTC offset tag, its sub-second tag).
_TIME_TAGS = {
    "captured_at": ("DateTimeOriginal", "OffsetTimeOriginal", "SubsecTimeOriginal"),
    "digitized_at": ("DateTimeDigitized", "OffsetTimeDigitized", "SubsecTimeDigitized"),
    "modified_at": ("DateTime", "OffsetTime", "SubsecTime"),
}


def exif_summary(image: Image.Image | bytes) -> dict[str, Any]:
    """Camera, lens, times, exposure and GPS of an image file, as JSON-safe values.

    Pass the file's bytes or the Pillow image as opened from them: `ImageOps.exif_transpose`
    (used by imageio.decode) removes the Orientation tag from the copy it returns.
    """
    from PIL import ExifTags, Image

    if isinstance(image, (bytes, bytearray, memoryview)):
        try:
            with Image.open(io.BytesIO(bytes(image))) as opened:
                return exif_summary(opened)
        except Exception:  # not an image Pillow can open: nothing to say
            return {}
    try:
        exif = image.getexif()
        tags = {**_named(exif, ExifTags.TAGS), **_named(exif.get_ifd(ExifTags.IFD.Exif), ExifTags.TAGS)}
        gps = _named(exif.get_ifd(ExifTags.IFD.GPSInfo), ExifTags.GPSTAGS)
    except Exception:
        tags, gps = {}, {}
    # pi-heif applies a HEIF's rotation itself and sets the copy's EXIF Orientation to 1 so it is
    # not applied twice: what the camera wrote is kept aside.
    original_orientation = image.info.get("original_orientation")
    if image.format == "HEIF" and isinstance(original_orientation, int) and 1 <= original_orientation <= 8:
        tags["Orientation"] = original_orientation
    xmp = _xmp_facts(image.info.get("xmp") or image.info.get("XML:com.adobe.xmp"))
    for tag, value in xmp.items():
        tags.setdefault(tag, value)  # XMP only where EXIF has nothing: EXIF is the camera's own
    summary: dict[str, Any] = {}
    for key, tag in _TEXT_TAGS.items():
        summary[key] = _text(tags.get(tag))
    for key, tag in _NUMBER_TAGS.items():
        value = _number(tags.get(tag))
        summary[key] = int(value) if value is not None and key in _INTEGER_KEYS else value
    if summary["exposure_time_s"]:
        summary["exposure_time"] = _shutter_speed(summary["exposure_time_s"])
    for key, (tag, offset_tag, subsec_tag) in _TIME_TAGS.items():
        summary[key] = _iso_time(tags.get(tag), tags.get(offset_tag), tags.get(subsec_tag))
    location = _gps(gps)
    if location:
        summary["gps"] = location
    return {k: v for k, v in summary.items() if v is not None and v != ""}


# XMP properties (as attributes or elements, any prefix binding) that stand in for EXIF tags.
_XMP_PROPERTIES = {
    "DateTimeOriginal": ("exif:DateTimeOriginal", "photoshop:DateCreated", "xmp:CreateDate"),
    "Orientation": ("tiff:Orientation",),
    "Make": ("tiff:Make",),
    "Model": ("tiff:Model",),
}
_XMP_MAX_BYTES = 1 << 20


def _xmp_facts(xmp: bytes | str | None) -> dict[str, Any]:
    """EXIF-named values from an XMP packet, for what the EXIF block lacks (phones' edits and some
    cameras write capture time and orientation only there). Read as text: no XML entities are
    expanded, so a hostile packet cannot make it large."""
    import re

    if not xmp:
        return {}
    text = xmp.decode("utf-8", "replace") if isinstance(xmp, bytes) else xmp
    text = text[:_XMP_MAX_BYTES]
    facts: dict[str, Any] = {}
    for tag, names in _XMP_PROPERTIES.items():
        for name in names:
            escaped = re.escape(name)
            match = re.search(rf'{escaped}\s*=\s*"([^"]*)"', text) or re.search(
                rf"<{escaped}>([^<]*)</{escaped}>", text
            )
            if match and match[1].strip():
                facts[tag] = _xmp_value(tag, match[1].strip())
                break
    return {k: v for k, v in facts.items() if v is not None}


def _xmp_value(tag: str, value: str) -> Any:
    if tag == "Orientation":
        return int(value) if value.isdigit() else None
    if tag == "DateTimeOriginal":
        # XMP dates are ISO 8601 (2023-02-21T14:33:08.302+03:00): EXIF's form, offset aside.
        if len(value) < 19 or value[4] != "-":
            return None
        return value[:10].replace("-", ":") + " " + value[11:19]
    return value


def _named(ifd, names: dict) -> dict[str, Any]:
    return {names[tag]: value for tag, value in dict(ifd).items() if tag in names}


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    value = "".join(ch for ch in value.replace("\x00", "") if ch.isprintable()).strip()
    return value[:MAX_STRING] or None


def _number(value: Any) -> float | None:
    if isinstance(value, (tuple, list)) and len(value) == 1:  # ISO is sometimes a 1-tuple
        value = value[0]
    if isinstance(value, (bytes, str, tuple, list, dict)) or value is None:
        return None
    try:
        number = float(value)  # IFDRational, int, float
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return round(number, 6) if math.isfinite(number) else None


def _shutter_speed(seconds: float) -> str:
    return f"1/{round(1 / seconds)}" if 0 < seconds < 1 else f"{seconds:g}"


def _iso_time(value: Any, offset: Any, subsec: Any) -> str | None:
    text = _text(value)
    if not text:
        return None
    try:
        moment = datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    subsec_text = _text(subsec)
    if subsec_text and subsec_text.isdigit():
        moment = moment.replace(microsecond=int(subsec_text[:6].ljust(6, "0")))
    iso = moment.isoformat()
    offset_text = _text(offset)
    if offset_text and len(offset_text) == 6 and offset_text[0] in "+-" and offset_text[3] == ":":
        iso += offset_text
    return iso


def _degrees(dms: Any, ref: Any, negative_ref: str) -> float | None:
    if not isinstance(dms, (tuple, list)) or len(dms) != 3:
        return None
    parts = [number for number in map(_number, dms) if number is not None]
    if len(parts) != 3:
        return None
    degrees = parts[0] + parts[1] / 60 + parts[2] / 3600
    if (_text(ref) or "").upper().startswith(negative_ref):
        degrees = -degrees
    return round(degrees, 7)


def _gps(gps: dict[str, Any]) -> dict[str, Any]:
    latitude = _degrees(gps.get("GPSLatitude"), gps.get("GPSLatitudeRef"), "S")
    longitude = _degrees(gps.get("GPSLongitude"), gps.get("GPSLongitudeRef"), "W")
    if latitude is None or longitude is None or abs(latitude) > 90 or abs(longitude) > 180:
        return {}
    location: dict[str, Any] = {"latitude": latitude, "longitude": longitude}
    altitude = _number(gps.get("GPSAltitude"))
    if altitude is not None:
        below_sea_level = gps.get("GPSAltitudeRef") in (1, b"\x01")
        location["altitude_m"] = round(-altitude if below_sea_level else altitude, 2)
    return location
