"""How a batch scales from one Dask worker process to two.

The batch is what ingest does to each upload: decode a photo-sized JPEG (reduced DCT decode),
make the thumbnails of the configured sizes, compute the perceptual hash. The JPEGs are made
from the photos scikit-learn and scikit-image ship (crops, flips, exposure changes, enlarged to
photo size). Each cluster size runs the same batch in the same partitions through
`chalicelib.ml.distributed.run_batch`; workers are warmed up first, and the two sizes alternate
`--repeat` times, because the machine may be shared: the median speed-up of the pairs is the
result. Only the cluster being timed is up: an idle Dask worker still takes about 4.5% of a core
(its 20 ms event-loop tick, 100 ms memory monitor, heartbeats) and the idle cluster's scheduler
and nannies as much again, which on two cores would come off the two-worker run alone.

Besides wall time it reports the CPU time the workers used and how busy the whole machine was
(/proc/stat), so a speed-up below 2× can be told apart: work that does not divide, or cores
taken by other processes.

    .venv/bin/python benchmarks/bench_dask_scaling.py [--items 200] [--side 2400] [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def shipped_photos():
    from skimage import data as skdata
    from sklearn.datasets import load_sample_image

    return [
        load_sample_image("china.jpg"),
        load_sample_image("flower.jpg"),
        skdata.astronaut(),
        skdata.coffee(),
        skdata.chelsea(),
        skdata.rocket(),
    ]


def make_jpegs(folder: Path, count: int, side: int) -> list[str]:
    """`count` JPEGs of side×(2/3·side) pixels, quality 90, varied from the shipped photos."""
    import numpy as np
    from PIL import Image, ImageEnhance

    rng = np.random.default_rng(0)
    sources = [Image.fromarray(photo) for photo in shipped_photos()]
    names = []
    for i in range(count):
        photo = sources[i % len(sources)]
        w, h = photo.size
        crop_w, crop_h = int(w * rng.uniform(0.7, 1.0)), int(h * rng.uniform(0.7, 1.0))
        x, y = int(rng.integers(0, w - crop_w + 1)), int(rng.integers(0, h - crop_h + 1))
        img = photo.crop((x, y, x + crop_w, y + crop_h)).resize((side, side * 2 // 3), Image.Resampling.BICUBIC)
        if rng.random() < 0.5:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.8, 1.2))
        name = f"photo-{i:03d}.jpg"
        img.save(folder / name, "JPEG", quality=90)
        names.append(name)
    return names


def thumbnails_and_phash(folder: str, name: str) -> dict:
    """The per-item work (runs on a worker): decode, thumbnails, perceptual hash."""
    from chalicelib.config import get_settings
    from chalicelib.imaging.imageio import decode, encode, fit_within
    from chalicelib.imaging.phash import phash

    settings = get_settings()
    img = decode(
        (Path(folder) / name).read_bytes(),
        max_pixels=settings.max_pixels,
        min_longest_side=max(settings.thumbnail_sizes),
    )
    sizes = {side: len(encode(fit_within(img, side), "JPEG", 85)) for side in settings.thumbnail_sizes}
    return {"thumbnail_bytes": sizes, "phash": phash(img)}


def worker_cpu_seconds() -> float:
    return time.process_time()


def machine_busy_jiffies() -> tuple[int, int]:
    """(busy, total) CPU jiffies of the whole machine since boot."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def timed_batch(client, folder: str, names: list[str], partitions: int) -> dict:
    from chalicelib.ml.distributed import run_batch

    fn = functools.partial(thumbnails_and_phash, folder)
    cpu_before = sum(client.run(worker_cpu_seconds).values())
    busy_before, total_before = machine_busy_jiffies()
    start = time.perf_counter()
    outcomes = list(run_batch(client, names, fn, partitions))
    wall = time.perf_counter() - start
    busy_after, total_after = machine_busy_jiffies()
    cpu = sum(client.run(worker_cpu_seconds).values()) - cpu_before
    failed = [o for o in outcomes if not o.ok]
    if failed or len(outcomes) != len(names):
        raise RuntimeError(f"{len(failed)} items failed, e.g. {failed[:1]}")
    cores = os.cpu_count() or 1
    return {
        "wall": wall,
        "worker_cpu": cpu,
        # Share of all the machine's cores that was busy, whoever used them.
        "machine_busy": (busy_after - busy_before) / max(1, total_after - total_before),
        "cores": cores,
    }


@contextlib.contextmanager
def local_cluster(n_workers: int):
    """A client of a LocalCluster of `n_workers` one-thread processes on loopback, all started."""
    from distributed import Client, LocalCluster

    from chalicelib.compute import use_worker_config

    use_worker_config()  # the workers Pixelake runs (chalicelib/dask_config)

    # silence_logs: heartbeats cut by the shutdown would print tracebacks; failures of the
    # work itself still surface through the outcomes.
    with (
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.CRITICAL,
        ) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(n_workers)
        yield client


@contextlib.contextmanager
def warm_cluster(n_workers: int, folder: str, names: list[str]):
    with local_cluster(n_workers) as client:
        # Warm-up: imports and first decodes on every worker, outside the timing.
        warm = functools.partial(thumbnails_and_phash, folder)
        for worker in client.scheduler_info()["workers"]:
            client.submit(warm, names[0], workers=[worker], pure=False).result()
        yield client


def paired_runs(folder: str, names: list[str], repeat: int, partitions: int) -> Iterator[dict[int, dict]]:
    """`repeat` pairs {1: run, 2: run} of the batch, the cluster sizes alternating; each run on a
    cluster of its own, started and warmed up for it and closed after it."""
    for _ in range(repeat):
        pair = {}
        for n in (1, 2):
            with warm_cluster(n, folder, names) as client:
                pair[n] = timed_batch(client, folder, names, partitions)
        yield pair


def others_cores(run: dict) -> float:
    """Cores the machine's other processes kept busy during a run."""
    return max(0.0, run["machine_busy"] * run["cores"] - run["worker_cpu"] / run["wall"])


def serial_seconds(folder: str, names: list[str]) -> float:
    thumbnails_and_phash(folder, names[0])  # imports
    start = time.perf_counter()
    for name in names:
        thumbnails_and_phash(folder, name)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--side", type=int, default=2400, help="longest side of the generated JPEGs")
    parser.add_argument("--partitions", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3, help="alternating pairs of timed runs")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pixelake-bench-") as tmp:
        start = time.perf_counter()
        names = make_jpegs(Path(tmp), args.items, args.side)
        megabytes = sum((Path(tmp) / n).stat().st_size for n in names) / 1e6
        print(
            f"{args.items} JPEGs {args.side}×{args.side * 2 // 3} ({megabytes:.0f} MB) made in "
            f"{time.perf_counter() - start:.1f} s; {os.cpu_count()} cores, load average "
            f"{os.getloadavg()[0]:.2f}; {args.partitions} partitions"
        )

        serial = serial_seconds(tmp, names)
        print(f"in process, no Dask : {serial:6.2f} s  {args.items / serial:6.1f} images/s")
        # Both clusters stay up and their runs alternate, so a change in the machine's load
        # (other processes) falls on both sides of each pair instead of on one cluster size.
        pairs = []
        for pair in paired_runs(tmp, names, args.repeat, args.partitions):
            pairs.append(pair)
            for n, run in pair.items():
                print(
                    f"{n} worker process{'es' if n > 1 else '  '}: {run['wall']:6.2f} s  "
                    f"{args.items / run['wall']:6.1f} images/s  workers' CPU {run['worker_cpu']:6.2f} s  "
                    f"other processes ≈{others_cores(run):.2f} of {run['cores']} cores"
                )
        speedups = sorted(pair[1]["wall"] / pair[2]["wall"] for pair in pairs)
        best = {n: min(pair[n]["wall"] for pair in pairs) for n in (1, 2)}
        cpu_per_image = {n: min(pair[n]["worker_cpu"] for pair in pairs) / args.items * 1000 for n in (1, 2)}
        print(
            f"speed-up 1 → 2 workers: median of pairs {statistics.median(speedups):.2f}× "
            f"(pairs {', '.join(f'{v:.2f}' for v in speedups)}), best runs {best[1] / best[2]:.2f}×; "
            f"target ≥ 1.8×"
        )
        print(
            f"workers' CPU per image {cpu_per_image[1]:.0f} ms (1 worker) → {cpu_per_image[2]:.0f} ms "
            f"(2 workers): the work divides; the wall-time speed-up is bounded by the idle cores"
        )


if __name__ == "__main__":
    main()
