"""Real files that packages ship in their source distributions: phone HEICs (pillow-heif's test
images: an iPhone's, a Xiaomi's, a Nokia burst, a 200 MP pixel bomb, a rotated Canon HIF), real
camera JPEGs from many makers (piexif's), ICC profiles (libvips' built-in Display P3 and CMYK
through pyvips, Debian's colord-data Adobe RGB and icc-profiles-free grey).

Each source distribution is fetched once with pip (the ordinary client of the registry) into
.pixelake/test-data/ and read from there by later runs.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".pixelake" / "test-data"
# Pinned: the tests name files inside these archives.
SDISTS = {"pillow-heif": "1.1.1", "piexif": "1.1.3"}
ADOBE_RGB_ICC = Path("/usr/share/color/icc/colord/AdobeRGB1998.icc")
GREY_L_STAR_ICC = Path("/usr/share/color/icc/Gray-CIE_L.icc")


@functools.cache
def _archive(package: str) -> Path:
    version = SDISTS[package]
    stem = f"{package.replace('-', '_')}-{version}"
    for suffix in (".tar.gz", ".zip"):
        if (CACHE / f"{stem}{suffix}").exists():
            return CACHE / f"{stem}{suffix}"
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--no-build-isolation",
            f"{package}=={version}",
            "-d",
            str(CACHE),
        ],
        check=True,
        capture_output=True,
    )
    return _archive.__wrapped__(package)


def sdist_file(package: str, member: str) -> bytes:
    """The bytes of `member` (a path inside the source tree, e.g. 'tests/images/r_canon.jpg')."""
    archive = _archive(package)
    name = f"{archive.name.removesuffix('.tar.gz').removesuffix('.zip')}/{member}"
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zf:
            return zf.read(name)
    with tarfile.open(archive) as tf:
        extracted = tf.extractfile(name)
        assert extracted is not None, name
        return extracted.read()


def sdist_members(package: str, folder: str, suffixes: tuple[str, ...]) -> list[str]:
    """Paths under `folder` in the source tree whose names end with one of `suffixes`."""
    archive = _archive(package)
    prefix = f"{archive.name.removesuffix('.tar.gz').removesuffix('.zip')}/"
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zf:
            names = zf.namelist()
    else:
        with tarfile.open(archive) as tf:
            names = tf.getnames()
    return sorted(
        n.removeprefix(prefix) for n in names if n.startswith(prefix + folder) and n.lower().endswith(suffixes)
    )


def vips_profile(name: str) -> bytes:
    """One of libvips' built-in ICC profiles ('p3': Display P3, 'cmyk': a CMYK print profile)."""
    import pyvips

    pixel = pyvips.Image.black(2, 2, bands=3).copy(interpretation="srgb")
    return pixel.icc_transform(name).get("icc-profile-data")


def adobe_rgb_profile() -> bytes:
    """Adobe RGB (1998) as Debian's colord-data ships it (`make system-packages` installs it)."""
    return ADOBE_RGB_ICC.read_bytes()


def grey_l_star_profile() -> bytes:
    """A grey profile whose tone curve is CIE L* (not sRGB's), from Debian's icc-profiles-free."""
    return GREY_L_STAR_ICC.read_bytes()
