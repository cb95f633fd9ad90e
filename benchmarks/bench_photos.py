"""Phone photos: HEIC ingest against a bare HEIC decode of the same file, and what colour
management costs (a Display P3 photo against the same pixels untagged and sRGB-tagged).

    .venv/bin/python benchmarks/bench_photos.py [--quick]   # prints JSON

The HEIC is a real iPhone 13 Pro photo (4032×3024, Display P3) from pillow-heif's source
distribution (tests/package_samples.py fetches it with pip). Targets: HEIC ingest ≤ 1.4× the
bare decode (libheif's full-size HEVC decode is the floor: HEVC has no reduced decode; thumbnails,
the three default analyzers and the colour transform of the 1024 px copy add ~150–200 ms CPU
whatever the format); a profiled JPEG's ingest ≤ 1.25× the untagged one's (littlecms on the
1024 px copy, ~0.8 MP), an sRGB-tagged one ≤ 1.05× (it skips the transform).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "benchmarks", REPO / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from inputs import SIZE_12MP, photo_jpeg  # noqa: E402
from timing import best_of  # noqa: E402

MAX_PIXELS = 75_000_000
THUMBNAIL_SIZES = (256, 1024)
ANALYZERS = ("properties", "faces", "phash")


def _ingest(data: bytes):
    from chalicelib.imaging.ingest import analyze_upload

    return analyze_upload(
        data, max_pixels=MAX_PIXELS, max_frames=200, thumbnail_sizes=THUMBNAIL_SIZES, analyzers=ANALYZERS
    )


def heic_ingest(repeat: int) -> dict:
    """analyze_upload on the iPhone HEIC against pi-heif's bare decode (open + load) of it."""
    from package_samples import sdist_file
    from PIL import Image

    from chalicelib.imaging import imageio

    data = sdist_file("pillow-heif", "tests/images/heif_other/pug.heic")
    imageio.probe(data, max_pixels=MAX_PIXELS)  # registers the plugin

    def bare_decode():
        with Image.open(io.BytesIO(data)) as img:
            img.load()

    timings = best_of(repeat, {"bare HEIC decode (pi-heif)": bare_decode, "ingest": lambda: _ingest(data)})
    floor, ours = timings["bare HEIC decode (pi-heif)"], timings["ingest"]
    return {
        "file": "pillow-heif tests/images/heif_other/pug.heic (iPhone 13 Pro, 4032×3024, Display P3)",
        "timings": {name: t.as_dict() for name, t in timings.items()},
        "ingest_over_bare_decode_cpu": round(ours.cpu_ms / floor.cpu_ms, 3),
        "target": "≤ 1.40",
        "met": ours.cpu_ms / floor.cpu_ms <= 1.4,
    }


def colour_conversion(repeat: int) -> dict:
    """The same 12 MP photo three ways: untagged, tagged sRGB (skips the transform), and converted
    by littlecms into Display P3 and tagged so (pays for the transform back to sRGB)."""
    from package_samples import vips_profile
    from PIL import Image, ImageCms

    from chalicelib.imaging import icc, imageio

    untagged = photo_jpeg(SIZE_12MP)
    picture = Image.open(io.BytesIO(untagged))
    srgb = io.BytesIO()
    picture.save(srgb, "JPEG", quality=90, icc_profile=icc.srgb_profile_bytes())
    p3_profile = vips_profile("p3")
    to_p3 = ImageCms.buildTransform(
        ImageCms.createProfile("sRGB"), ImageCms.ImageCmsProfile(io.BytesIO(p3_profile)), "RGB", "RGB"
    )
    p3 = io.BytesIO()
    ImageCms.applyTransform(picture, to_p3).save(p3, "JPEG", quality=90, icc_profile=p3_profile)
    files = {"untagged": untagged, "sRGB-tagged": srgb.getvalue(), "Display P3": p3.getvalue()}
    side = max(THUMBNAIL_SIZES)
    candidates = {f"ingest {name}": (lambda d=data: _ingest(d)) for name, data in files.items()}
    candidates.update(
        {
            f"decode {name}": (lambda d=data: imageio.decode_array(d, max_pixels=MAX_PIXELS, min_longest_side=side))
            for name, data in files.items()
        }
    )
    timings = best_of(repeat, candidates)
    base = timings["ingest untagged"].cpu_ms
    ratios = {name: round(timings[f"ingest {name}"].cpu_ms / base, 3) for name in files}
    return {
        "photo": f"{SIZE_12MP[0]}×{SIZE_12MP[1]} JPEG, quality 90",
        "timings": {name: t.as_dict() for name, t in timings.items()},
        "ingest_over_untagged_cpu": ratios,
        "conversion_ms": round(timings["decode Display P3"].cpu_ms - timings["decode untagged"].cpu_ms, 2),
        "targets": {"Display P3": "≤ 1.25", "sRGB-tagged": "≤ 1.05"},
        "met": ratios["Display P3"] <= 1.25 and ratios["sRGB-tagged"] <= 1.05,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    repeat = 3 if args.quick else 9
    print(json.dumps({"heic_ingest": heic_ingest(repeat), "colour_conversion": colour_conversion(repeat)}, indent=2))


if __name__ == "__main__":
    main()
