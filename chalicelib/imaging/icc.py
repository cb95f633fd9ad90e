"""Colour management: pixels from the colour space their embedded ICC profile describes to sRGB.

Phones write Display P3 (JPEG and HEIC alike), cameras Adobe RGB, print workflows CMYK: shown
as if they were sRGB, their colours are off by a mean ΔE2000 of about 5. Every decode therefore
converts through littlecms (Pillow's ImageCms) when the file carries a profile that is not sRGB;
untagged and sRGB-tagged files skip the transform, so only profiled images pay (benchmarks/
bench_pipeline.py measures what they pay). Transforms are built once per profile and process.

The rendering intent is relative colorimetric, what libvips and browsers use for display:
in-gamut colours are kept exactly, out-of-gamut ones are clipped to the sRGB gamut's edge.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image, ImageCms

# A profile is taken as sRGB when its description names sRGB (the IEC 61966-2.1 profile, Apple's,
# Google's and libvips' compact ones all do) and its primaries are sRGB's: converting sRGB to sRGB
# changes nothing. The primaries rule out look-alikes such as Samsung's "DCI-P3 D65 Gamut with
# sRGB Transfer".
_SRGB_NAMES = ("srgb", "iec61966-2-1", "iec 61966-2-1", "iec61966-2.1")
# sRGB's red, green and blue colorants (XYZ, adapted to the ICC's D50 white), and how far a
# profile's may be from them (rounding in s15Fixed16 and in the adaptation matrix).
_SRGB_COLORANTS = ((0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141))
_COLORANT_TOLERANCE = 0.003
# ICC colour space signature (header bytes 16–19) → the Pillow mode whose pixels it describes.
_MODE_OF_SPACE = {b"RGB ": "RGB", b"GRAY": "L", b"CMYK": "CMYK"}
# JPEG keeps an ICC profile in APP2 segments headed by this, numbered (1-based) when split.
_JPEG_ICC_MARKER = b"ICC_PROFILE\x00"


@dataclass(frozen=True)
class Profile:
    """An embedded profile: what it is called, the pixels it describes, whether it is sRGB."""

    description: str
    mode: str | None  # "RGB", "L", "CMYK", or None for a space we do not convert from
    is_srgb: bool

    def summary(self, converted: bool) -> dict:
        return {"description": self.description, "converted_to_srgb": converted}


class _Known:
    """A profile seen before: its facts, the parsed profile and its transforms by mode."""

    def __init__(self, icc: bytes) -> None:
        from PIL import ImageCms

        self.parsed: ImageCms.ImageCmsProfile | None = None
        self.transforms: dict[tuple[str, str], ImageCms.ImageCmsTransform] = {}
        space = _MODE_OF_SPACE.get(icc[16:20])
        try:
            self.parsed = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            description = (self.parsed.profile.profile_description or "").strip()
        except (OSError, ValueError, TypeError):  # a damaged profile: the pixels are taken as sRGB
            self.profile = Profile("unreadable profile", None, True)
            return
        is_srgb = (
            space == "RGB"
            and any(name in description.lower() for name in _SRGB_NAMES)
            and _has_srgb_primaries(self.parsed)
        )
        self.profile = Profile(description[:128] or "unnamed profile", space, is_srgb)

    def transform(self, in_mode: str, out_mode: str) -> ImageCms.ImageCmsTransform:
        from PIL import ImageCms

        key = (in_mode, out_mode)
        if key not in self.transforms:
            assert self.parsed is not None, "only a readable profile needs a transform"
            self.transforms[key] = ImageCms.buildTransform(
                self.parsed,
                ImageCms.createProfile("sRGB"),
                in_mode,
                out_mode,
                renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
            )
        return self.transforms[key]


def _has_srgb_primaries(parsed: ImageCms.ImageCmsProfile) -> bool:
    core = parsed.profile
    colorants = []
    for colorant in (core.red_colorant, core.green_colorant, core.blue_colorant):
        if colorant is None:
            return False
        colorants.append(colorant[0])  # (XYZ, xyY): the XYZ
    return all(
        abs(got - want) <= _COLORANT_TOLERANCE
        for xyz, expected in zip(colorants, _SRGB_COLORANTS, strict=True)
        for got, want in zip(xyz, expected, strict=True)
    )


_KNOWN: dict[bytes, _Known] = {}
_KNOWN_LIMIT = 32


def _lookup(icc: bytes) -> _Known:
    # Keyed by a digest, not the bytes: a CMYK profile is ~1 MB.
    digest = hashlib.blake2b(icc, digest_size=16).digest()
    known = _KNOWN.get(digest)
    if known is None:
        if len(_KNOWN) >= _KNOWN_LIMIT:
            _KNOWN.pop(next(iter(_KNOWN)))
        known = _KNOWN[digest] = _Known(bytes(icc))
    return known


def describe(icc: bytes | None) -> Profile | None:
    """The embedded profile's facts (cached by content), or None for an untagged image."""
    return _lookup(icc).profile if icc else None


def needs_transform(icc: bytes | None, mode: str) -> bool:
    """True when pixels of `mode` tagged with `icc` must be converted to be sRGB."""
    profile = describe(icc)
    if profile is None or profile.is_srgb or profile.mode is None:
        return False
    return profile.mode == ("RGB" if mode in ("RGB", "RGBA") else mode)


def image_to_srgb(img: Image.Image, icc: bytes | None) -> Image.Image:
    """The image's pixels in sRGB: RGB/RGBA stay so, grey stays grey, CMYK becomes RGB.

    A profile that does not describe the image's pixels (a grey profile on RGB pixels) is
    ignored, as every viewer does.
    """
    if icc is None or not needs_transform(icc, img.mode):
        return img
    from PIL import ImageCms

    if img.mode == "L":
        # littlecms converts grey to sRGB's RGB; its three channels are equal: keep one.
        rgb = ImageCms.applyTransform(img, _lookup(icc).transform("L", "RGB"))
        assert rgb is not None  # not in place: a new image
        return rgb.getchannel(0)
    if img.mode == "CMYK":
        converted = ImageCms.applyTransform(img, _lookup(icc).transform("CMYK", "RGB"))
        assert converted is not None
        return converted
    transform = _lookup(icc).transform(img.mode, img.mode)
    ImageCms.applyTransform(img, transform, inPlace=True)
    return img


def array_to_srgb(pixels: np.ndarray, icc: bytes | None) -> np.ndarray:
    """An OpenCV-order (BGR, BGRA or grey) array's pixels in sRGB, converted when the profile says so."""
    mode = "L" if pixels.ndim == 2 else "RGB"
    if icc is None or not needs_transform(icc, mode):
        return pixels
    import cv2
    import numpy as np
    from PIL import Image

    if pixels.ndim == 3 and pixels.shape[2] == 4:  # alpha is not colour: it stays as it is
        return np.dstack([array_to_srgb(np.ascontiguousarray(pixels[:, :, :3]), icc), pixels[:, :, 3]])

    height, width = pixels.shape[:2]
    if mode == "L":
        img = Image.frombuffer("L", (width, height), np.ascontiguousarray(pixels), "raw", "L", 0, 1).copy()
        return np.asarray(image_to_srgb(img, icc)).copy()
    img = Image.frombuffer("RGB", (width, height), np.ascontiguousarray(pixels), "raw", "BGR", 0, 1)
    return cv2.cvtColor(np.asarray(image_to_srgb(img, icc)), cv2.COLOR_RGB2BGR)


def jpeg_icc_profile(data: bytes) -> bytes | None:
    """The ICC profile of a JPEG file from its APP2 segments (reassembled in sequence order),
    read from the header without decoding anything; None when there is none or it is broken."""
    chunks: dict[int, bytes] = {}
    position = 2  # after SOI
    end = len(data)
    while position + 4 <= end:
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length field
            position += 2
            continue
        if marker in (0xDA, 0xD9):  # start of scan: the header is over
            break
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        segment = data[position + 4 : position + 2 + length]
        if marker == 0xE2 and segment.startswith(_JPEG_ICC_MARKER) and len(segment) > 14:
            chunks[segment[12]] = segment[14:]
        position += 2 + length
    if not chunks:
        return None
    if sorted(chunks) != list(range(1, len(chunks) + 1)):
        return None  # a missing piece: no profile rather than a wrong one
    return b"".join(chunks[index] for index in sorted(chunks))


def srgb_profile_bytes() -> bytes:
    """An sRGB ICC profile (littlecms' built-in) to embed in outputs that ask for one."""
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
