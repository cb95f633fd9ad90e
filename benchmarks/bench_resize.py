"""Resize a 12 MP JPEG to 1024 px: Pixelake's run_operation against the floor and against libvips.

    .venv/bin/python benchmarks/bench_resize.py [--repeat 30] [--width 1024]

Builds a 4000×3000 JPEG from scikit-learn's china.jpg (upscaled, with noise so it compresses like
a photo: about 3 MB), then times, best of N rounds with time.perf_counter:
  - run_operation(data, "resize", {"width": W}) end to end (bytes in, JPEG bytes out);
  - a bare reduced-size decode at the smallest DCT scale that still covers W (Pillow's draft and
    OpenCV's IMREAD_REDUCED_COLOR_*; the faster is the floor no resize can beat);
  - pyvips.Image.thumbnail_buffer(data, W) + JPEG encode at the same quality.
Targets: run_operation ≤ 1.3× the floor and ≤ 1.0× pyvips. Not a test, not deployed.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing

import cv2
import numpy as np
from PIL import Image

from chalicelib.imaging.operation_runner import run_operation
from chalicelib.imaging.operations import DEFAULT_QUALITY

MAX_PIXELS = 75_000_000
SIZE = (4000, 3000)


def twelve_megapixel_jpeg() -> bytes:
    from sklearn.datasets import load_sample_image

    photo = cv2.resize(load_sample_image("china.jpg"), SIZE, interpolation=cv2.INTER_CUBIC)
    noise = np.random.default_rng(0).normal(0, 6, photo.shape)
    photo = np.clip(photo + noise, 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(photo).save(out, "JPEG", quality=90)
    return out.getvalue()


def best_of(repeat: int, candidates: dict) -> dict[str, float]:
    """Best time in ms of each candidate, run in turn (round robin) so that load from other
    processes falls on all of them alike."""
    for func in candidates.values():
        func()  # warm up: imports, caches, thread pools
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeat):
        for name, func in candidates.items():
            start = time.perf_counter()
            func()
            times[name].append(time.perf_counter() - start)
    return {name: min(values) * 1000 for name, values in times.items()}


def dct_scale(width: int, height: int, target: int) -> int:
    """The largest JPEG DCT reduction (1, 2, 4, 8) whose result still has a side ≥ target."""
    return max(s for s in (1, 2, 4, 8) if max(width, height) / s >= target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--width", type=int, default=1024)
    args = parser.parse_args()

    import pyvips

    data = twelve_megapixel_jpeg()
    scale = dct_scale(*SIZE, args.width)
    reduced_flag = {
        1: cv2.IMREAD_COLOR,
        2: cv2.IMREAD_REDUCED_COLOR_2,
        4: cv2.IMREAD_REDUCED_COLOR_4,
        8: cv2.IMREAD_REDUCED_COLOR_8,
    }[scale]

    def pixelake():
        return run_operation(data, "resize", {"width": args.width}, max_pixels=MAX_PIXELS)

    def pillow_draft():
        img = Image.open(io.BytesIO(data))
        img.draft("RGB", (SIZE[0] // scale, SIZE[1] // scale))
        img.load()
        return img

    def opencv_reduced():
        return cv2.imdecode(np.frombuffer(data, np.uint8), reduced_flag)

    def vips():
        return pyvips.Image.thumbnail_buffer(data, args.width).jpegsave_buffer(Q=DEFAULT_QUALITY)

    output = pixelake()
    assert (output.width, output.format) == (args.width, "jpeg"), output
    assert pillow_draft().size == opencv_reduced().shape[1::-1] == (SIZE[0] // scale, SIZE[1] // scale)

    rows = best_of(
        args.repeat,
        {
            "pixelake run_operation resize": pixelake,
            f"Pillow draft decode 1/{scale}": pillow_draft,
            f"OpenCV IMREAD_REDUCED 1/{scale}": opencv_reduced,
            "pyvips thumbnail_buffer + jpeg": vips,
        },
    )
    floor = min(rows[f"Pillow draft decode 1/{scale}"], rows[f"OpenCV IMREAD_REDUCED 1/{scale}"])
    ours, reference = rows["pixelake run_operation resize"], rows["pyvips thumbnail_buffer + jpeg"]

    print(
        f"{SIZE[0]}×{SIZE[1]} JPEG, {len(data) / 1e6:.2f} MB → width {args.width} "
        f"({output.width}×{output.height}, {output.size_bytes / 1e3:.0f} kB); best of {args.repeat}; "
        f"OpenCV threads {cv2.getNumThreads()}, libvips {pyvips.version(0)}.{pyvips.version(1)}"
    )
    print(f"{'':34} {'ms':>8}")
    for name, ms in rows.items():
        print(f"{name:34} {ms:8.1f}")
    print(f"run_operation / floor : {ours / floor:.2f}×  (target ≤ 1.30) {'met' if ours / floor <= 1.3 else 'MISSED'}")
    print(
        f"run_operation / pyvips: {ours / reference:.2f}×  (target ≤ 1.00) {'met' if ours <= reference else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
