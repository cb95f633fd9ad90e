"""Photos for the colour and format tests, and how far our pictures are from the reference tools'."""

from __future__ import annotations

import io

import numpy as np
from package_samples import sdist_file
from PIL import Image, ImageCms


def heif_sample(name: str) -> bytes:
    return sdist_file("pillow-heif", f"tests/images/{name}")


def delta_e(ours_bgr: np.ndarray, reference_rgb: np.ndarray) -> tuple[float, float]:
    """(mean, 95th percentile) CIEDE2000 between two same-sized pictures, over 4×4 px block means.

    Colour, not detail: a 256 px JPEG thumbnail (quality 82) of the astronaut differs from libvips'
    by a mean ΔE of 2.4 per pixel even untagged (compression and the shrink kernel, at edges);
    averaged over 4×4 blocks that is 1.2, and a wrong colour space still shows in full.
    """
    import cv2
    from skimage.color import deltaE_ciede2000, rgb2lab

    def blocks(rgb: np.ndarray) -> np.ndarray:
        height, width = rgb.shape[:2]
        return cv2.resize(rgb.astype(np.float32), (width // 4, height // 4), interpolation=cv2.INTER_AREA) / 255.0

    distance = deltaE_ciede2000(rgb2lab(blocks(reference_rgb)), rgb2lab(blocks(ours_bgr[:, :, ::-1])))
    return float(distance.mean()), float(np.percentile(distance, 95))


def littlecms_thumbnail(data: bytes, size: tuple[int, int]) -> np.ndarray:
    """The reference for HEIC (libvips' wheel has no HEVC decoder): pillow-heif's decode, littlecms
    from the embedded profile to sRGB at full size, Lanczos to `size`."""
    import pillow_heif

    heif = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True)
    picture = heif.to_pillow()
    profile = heif.info.get("icc_profile")
    if profile:
        transform = ImageCms.buildTransform(
            ImageCms.ImageCmsProfile(io.BytesIO(profile)),
            ImageCms.createProfile("sRGB"),
            "RGB",
            "RGB",
            renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
        )
        picture = ImageCms.applyTransform(picture.convert("RGB"), transform)
    return np.asarray(picture.convert("RGB").resize(size, Image.Resampling.LANCZOS))


def vips_thumbnail(data: bytes, side: int) -> np.ndarray:
    """libvips' thumbnail of the file, imported through its embedded profile and exported as sRGB."""
    import pyvips

    thumb = pyvips.Image.thumbnail_buffer(data, side, export_profile="srgb", intent="relative")
    if thumb.hasalpha():
        thumb = thumb.flatten()
    return np.ndarray(buffer=thumb.write_to_memory(), dtype=np.uint8, shape=[thumb.height, thumb.width, thumb.bands])


def astronaut() -> Image.Image:
    import skimage.data

    return Image.fromarray(skimage.data.astronaut())


def profiled_jpeg(profile: bytes, *, mode: str = "RGB", size: tuple[int, int] | None = None) -> bytes:
    """The astronaut converted by littlecms from sRGB into `profile`'s space, tagged with it."""
    source = astronaut() if size is None else astronaut().resize(size, Image.Resampling.LANCZOS)
    transform = ImageCms.buildTransform(
        ImageCms.createProfile("sRGB"),
        ImageCms.ImageCmsProfile(io.BytesIO(profile)),
        "RGB",
        mode,
        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
    )
    out = io.BytesIO()
    ImageCms.applyTransform(source, transform).save(out, "JPEG", quality=95, icc_profile=profile)
    return out.getvalue()


def heic_bytes(img: Image.Image, **save) -> bytes:
    import pillow_heif

    out = io.BytesIO()
    pillow_heif.from_pillow(img).save(out, quality=92, **save)
    return out.getvalue()


def coffee() -> Image.Image:
    """scikit-image's coffee cup: saturated enough that Display P3 shown as sRGB is off by a mean
    ΔE2000 above 2 (the astronaut's 1.4 would pass the colour targets unconverted)."""
    import skimage.data

    return Image.fromarray(skimage.data.coffee())


def in_display_p3(picture: Image.Image) -> Image.Image:
    """`picture` (sRGB) converted by littlecms into Display P3 (libvips' profile), untagged."""
    from package_samples import vips_profile

    transform = ImageCms.buildTransform(
        ImageCms.createProfile("sRGB"),
        ImageCms.ImageCmsProfile(io.BytesIO(vips_profile("p3"))),
        "RGB",
        "RGB",
        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
    )
    converted = ImageCms.applyTransform(picture.convert("RGB"), transform)
    assert converted is not None
    converted.info.pop("icc_profile", None)  # littlecms tags its output: the nclx box is the only tag
    return converted


def nclx_heic(picture: Image.Image, cicp: tuple[int, int, int]) -> bytes:
    """A HEIC by libheif's x265 encoder (pillow-heif) with an nclx box (primaries, transfer,
    matrix) and no ICC profile, as iPhones write Display P3 (12, 13, 6)."""
    import pillow_heif

    primaries, transfer, matrix = cicp
    out = io.BytesIO()
    pillow_heif.from_pillow(picture).save(
        out,
        quality=95,
        color_primaries=primaries,
        transfer_characteristics=transfer,
        matrix_coefficients=matrix,
        full_range_flag=1,
    )
    return out.getvalue()


def nclx_avif(picture: Image.Image, cicp: tuple[int, int, int]) -> bytes:
    """An AVIF by libavif's avifenc (Debian libavif-bin; Pillow's encoder always writes sRGB's
    nclx) with the given nclx box and no ICC profile."""
    import subprocess
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="pixelake-avif-") as folder:
        source, target = Path(folder) / "in.png", Path(folder) / "out.avif"
        picture.save(source)
        subprocess.run(
            [
                "avifenc",
                "--min",
                "8",
                "--max",
                "12",
                "--yuv",
                "444",
                "--range",
                "full",
                "--cicp",
                "/".join(map(str, cicp)),
                str(source),
                str(target),
            ],
            check=True,
            capture_output=True,
        )
        return target.read_bytes()


def decoded_as_is(data: bytes) -> Image.Image:
    """A HEIC's (pillow-heif) or AVIF's (Pillow) decoded RGB pixels, without colour management."""
    import pillow_heif

    if b"avif" in data[8:32]:  # ftyp's brands
        with Image.open(io.BytesIO(data)) as opened:
            return opened.convert("RGB")
    return pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True).to_pillow().convert("RGB")


def display_p3_reference(data: bytes, size: tuple[int, int] | None = None) -> np.ndarray:
    """The file's decoded pixels converted by littlecms from libvips' Display P3 profile to sRGB,
    Lanczos to `size`: the reference for a P3 file tagged by nclx only."""
    from package_samples import vips_profile

    transform = ImageCms.buildTransform(
        ImageCms.ImageCmsProfile(io.BytesIO(vips_profile("p3"))),
        ImageCms.createProfile("sRGB"),
        "RGB",
        "RGB",
        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
    )
    converted = ImageCms.applyTransform(decoded_as_is(data), transform)
    assert converted is not None
    if size is not None:
        converted = converted.resize(size, Image.Resampling.LANCZOS)
    return np.asarray(converted)
