"""Upload → `ready` latency through the local stack (`make dev` in a subprocess: embedded
PostgreSQL, moto S3 + SQS, the pollers running the real handlers): POST /api/upload, then poll
GET /api/images/{id} every 20 ms until it is ready. Uploads go one at a time, photos varied.

    .venv/bin/python benchmarks/bench_e2e.py [--uploads 100]   # prints JSON
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "benchmarks", REPO / "tests", REPO / "tests" / "e2e"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from timing import percentile  # noqa: E402


def varied_photos(count: int) -> list[bytes]:
    """Phone-sized JPEGs (1600–3200 px) from the shipped photos, cropped and scaled."""
    import numpy as np
    from inputs import jpeg, shipped_photos
    from PIL import Image

    rng = np.random.default_rng(3)
    photos = list(shipped_photos().values())
    out = []
    for i in range(count):
        photo = Image.fromarray(photos[i % len(photos)])
        side = int(rng.integers(1600, 3201))
        out.append(jpeg(np.asarray(photo.resize((side, side * 3 // 4), Image.Resampling.BILINEAR)), quality=85))
    return out


def run(uploads: int) -> dict:
    import requests
    from e2e_helpers import StackProcess
    from sample_images import multipart

    photos = varied_photos(uploads)
    home = Path(tempfile.mkdtemp(prefix="pixelake-bench-e2e-"))
    stack = StackProcess(home).start()
    latencies, failed = [], 0
    try:
        for i, data in enumerate(photos):
            body, headers = multipart("file", f"photo-{i}.jpg", data)
            start = time.perf_counter()
            response = requests.post(f"{stack.url}/api/upload", data=body, headers=headers, timeout=30)
            response.raise_for_status()
            image_id = response.json()["id"]
            while True:
                image = requests.get(f"{stack.url}/api/images/{image_id}", timeout=10).json()
                if image["status"] in ("ready", "failed"):
                    break
                if time.perf_counter() - start > 60:
                    raise TimeoutError(f"image {image_id} not processed in 60 s")
                time.sleep(0.02)
            latencies.append((time.perf_counter() - start) * 1000)
            failed += image["status"] == "failed"
    finally:
        stack.stop()
        shutil.rmtree(home, ignore_errors=True)
    return {
        "uploads": uploads,
        "failed": failed,
        "bytes_mean": round(sum(map(len, photos)) / len(photos)),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p95_ms": round(percentile(latencies, 95), 1),
        "max_ms": round(max(latencies), 1),
        "latencies_ms": [round(v, 1) for v in latencies],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uploads", type=int, default=100)
    args = parser.parse_args()
    print(json.dumps(run(args.uploads), indent=2))


if __name__ == "__main__":
    main()
