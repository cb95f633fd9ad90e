"""A safe, JSON-clean subset of EXIF: camera, capture time, exposure, GPS.

Only named, scalar tags are kept; binary blobs (MakerNote, thumbnails) are dropped and
strings are capped, so a hostile file cannot bloat the database row.
"""
from __future__ import annotations

from typing import Any

MAX_STRING = 200
# Pillow's numeric tag ids → our names, in the main IFD (0th) and the Exif sub-IFD.
_MAIN_TAGS = {0x010F: "make", 0x0110: "model", 0x0112: "orientation", 0x0131: "software", 0x0132: "modified_at"}
_EXIF_TAGS = {
    0x9003: "captured_at", 0x829A: "exposure_time", 0x829D: "f_number", 0x8827: "iso",
    0x920A: "focal_length", 0xA434: "lens_model", 0x9209: "flash",
}
_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825


def _clean(value: Any) -> Any:
    if isinstance(value, bytes):
        return None
    if isinstance(value, str):
        value = value.replace("\x00", "").strip()
        return value[:MAX_STRING] or None
    if isinstance(value, tuple):
        cleaned = [_clean(v) for v in value[:8]]
        return cleaned if all(v is not None for v in cleaned) else None
    try:
        number = float(value)  # IFDRational, int
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if number != number or number in (float("inf"), float("-inf")):
        return None
    return int(number) if number.is_integer() else round(number, 6)


def _iso_datetime(value: Any) -> str | None:
    # EXIF writes "YYYY:MM:DD HH:MM:SS"; anything else is kept as text only if it parses.
    if not isinstance(value, str) or len(value) < 19:
        return None
    date, _, time = value[:19].partition(" ")
    parts = date.split(":")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    return f"{parts[0]}-{parts[1]}-{parts[2]}T{time}"


def _degrees(dms: Any, ref: Any) -> float | None:
    try:
        d, m, s = (float(v) for v in dms)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    value = d + m / 60 + s / 3600
    return round(-value if ref in ("S", "W") else value, 7)


def gps(gps_ifd: dict) -> dict | None:
    lat = _degrees(gps_ifd.get(2), gps_ifd.get(1))
    lon = _degrees(gps_ifd.get(4), gps_ifd.get(3))
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    result = {"latitude": lat, "longitude": lon}
    altitude = _clean(gps_ifd.get(6))
    if isinstance(altitude, (int, float)):
        result["altitude"] = -altitude if gps_ifd.get(5) in (1, b"\x01") else altitude
    return result


def exif_summary(img) -> dict[str, Any]:
    """The clean EXIF subset of a Pillow image (empty when it has none or it is unreadable)."""
    try:
        exif = img.getexif()
        sub = exif.get_ifd(_EXIF_IFD)
        gps_ifd = exif.get_ifd(_GPS_IFD)
    except Exception:  # a malformed EXIF block is not a reason to reject the image
        return {}
    summary: dict[str, Any] = {}
    for tags, source in ((_MAIN_TAGS, exif), (_EXIF_TAGS, sub)):
        for tag, name in tags.items():
            value = _clean(source.get(tag))
            if value is not None:
                summary[name] = value
    for name in ("captured_at", "modified_at"):
        if name in summary:
            parsed = _iso_datetime(summary[name])
            if parsed:
                summary[name] = parsed
            else:
                del summary[name]
    location = gps(gps_ifd) if gps_ifd else None
    if location:
        summary["gps"] = location
    return summary
