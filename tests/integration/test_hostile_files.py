"""Hostile and malformed files through the real upload and ingest path; peak memory of ingest.

Every hostile file ends as a 4xx at upload or a `failed` image with a reason; every valid but
unusual one ends `ready` with thumbnails; the ingest workers neither crash nor retry; peak
memory of ingesting the bombs is measured in a fresh process (ru_maxrss).
"""

import json
import logging
import re
import subprocess
import sys
import time
from pathlib import Path

from hostile_images import HOSTILE, VALID
from sample_images import multipart

from chalicelib import storage
from chalicelib.db.session import session_scope
from chalicelib.db.tables import Image as ImageRow

PROJECT_DIR = Path(__file__).resolve().parents[2]
# Files built to make a decoder allocate: huge claimed sizes, real pixel and text bombs, many frames.
BOMBS = [name for name, _, _ in HOSTILE if any(w in name for w in ("bomb", "claiming", "frames", "inflating"))]


def _upload(client, filename: str, data: bytes):
    body, headers = multipart("file", filename, data, content_type="image/jpeg")
    return client.http.post("/api/upload", body=body, headers=headers)


def _wait_until_processed(client, image_ids: list[int], timeout: float = 120) -> dict[int, dict]:
    done: dict[int, dict] = {}
    deadline = time.monotonic() + timeout
    while len(done) < len(image_ids) and time.monotonic() < deadline:
        for image_id in image_ids:
            if image_id not in done:
                image = client.http.get(f"/api/images/{image_id}").json_body
                if image["status"] in ("ready", "failed"):
                    done[image_id] = image
        time.sleep(0.2)
    missing = sorted(set(image_ids) - set(done))
    assert not missing, f"images {missing} were not processed in {timeout} s"
    return done


def test_hostile_files_are_refused_or_fail_with_a_reason_and_valid_ones_become_ready(client, workers, caplog):
    assert len(HOSTILE) >= 30
    caplog.set_level(logging.WARNING)
    refused, accepted = {}, {}
    for group, corpus in (("hostile", HOSTILE), ("valid", VALID)):
        for name, filename, make in corpus:
            response = _upload(client, filename, make())
            if response.status_code == 202:
                accepted[response.json_body["id"]] = (group, name)
            else:
                assert group == "hostile", (name, response.status_code, response.body)
                assert 400 <= response.status_code < 500, (name, response.status_code)
                assert response.json_body["error"]["message"], name
                refused[name] = response.status_code

    images = _wait_until_processed(client, list(accepted))
    for image_id, (group, name) in accepted.items():
        image = images[image_id]
        if group == "hostile":
            assert image["status"] == "failed", (name, image["status"])
            assert image["error"] and len(image["error"]) > 10, name
        else:
            assert image["status"] == "ready", (name, image["error"])
            assert len(image["thumbnails"]) == 2 and all(
                t["width"] >= 1 and t["height"] >= 1 for t in image["thumbnails"]
            ), name
            assert len(json.dumps(image["metadata"])) < 16_384, name  # a 60 KB EXIF block is summarised

    with session_scope() as session:
        rows = [session.get(ImageRow, image_id) for image_id in accepted]
        for row in rows:
            # Keys are the server's; the stored type is the one the bytes announced, never the client's.
            assert re.fullmatch(r"uploads/\d+/[0-9a-f]{32}\.(jpg|png|gif|webp|tiff|bmp)", row.key), row.key
            head = storage.head(row.key)
            assert head["ContentType"] == row.content_type
    polyglot = next(i for i, (_, n) in accepted.items() if n == "jpeg followed by html (polyglot)")
    assert images[polyglot]["content_type"] == "image/jpeg"

    # The svg, html, text, script, pdf, zip, elf and psd files never reached storage.
    assert {
        "svg named .jpg",
        "html named .jpg",
        "plain text named .jpg",
        "shell script named .jpg",
        "pdf named .jpg",
        "elf executable named .jpg",
        "zero bytes",
    } <= set(refused)
    assert all(poller.is_alive() for poller in workers)
    crashes = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith(("pixelake", "infra"))]
    assert crashes == [], [r.getMessage() for r in crashes]
    print(
        f"\n{len(HOSTILE)} hostile files: {len(refused)} refused at upload, "
        f"{sum(1 for g, _ in accepted.values() if g == 'hostile')} failed at ingest; "
        f"{len(VALID)} valid unusual files ready"
    )


MEASURE = r"""
import json, resource, sys, zlib
sys.path[:0] = ["tests", "."]
from hostile_images import HOSTILE, VALID, _png_of
from chalicelib.config import Settings
from chalicelib.imaging.imageio import ImageRejected
from chalicelib.imaging.ingest import analyze_upload

settings = Settings()
names = set(json.loads(sys.argv[1]))
limits = dict(max_pixels=settings.max_pixels, max_frames=settings.max_frames,
              thumbnail_sizes=settings.thumbnail_sizes, analyzers=settings.ingest_analyzers)

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def ingest(data):
    try:
        analyze_upload(data, **limits)
        return "ready"
    except ImageRejected:
        return "failed"

bombs = [(name, make()) for name, _, make in HOSTILE if name in names]
ingest(dict((n, m) for n, _, m in VALID)["cmyk jpeg"]())  # warm: every library imported, caches filled
baseline = peak_mb()
outcomes = {name: ingest(data) for name, data in bombs}
after_bombs = peak_mb()

# The largest picture the limits let through, as a decompression bomb: a 1-bit PNG of
# max_pixels black pixels, a few kilobytes on disk.
side = int(settings.max_pixels ** 0.5)
packer = zlib.compressobj(9)
rows = b"".join(packer.compress(b"\x00" * (1 + (side + 7) // 8)) for _ in range(side)) + packer.flush()
near_limit = _png_of(side, side, rows, depth=1)
near_outcome = ingest(near_limit)
print(json.dumps({"baseline_mb": baseline, "after_bombs_mb": after_bombs, "outcomes": outcomes,
                  "near_limit": {"side": side, "file_bytes": len(near_limit), "outcome": near_outcome,
                                 "peak_mb": peak_mb()}}))
"""


def test_peak_memory_of_ingesting_the_bombs_stays_bounded(record_property):
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, json.dumps(BOMBS)],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "PIXELAKE_STAGE": "local"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(measured["outcomes"]) == len(BOMBS) >= 8
    assert set(measured["outcomes"].values()) == {"failed"}, measured["outcomes"]
    bombs_mb = measured["after_bombs_mb"] - measured["baseline_mb"]
    near = measured["near_limit"]
    near_mb = near["peak_mb"] - measured["baseline_mb"]
    record_property("bombs_peak_rss_growth_mb", round(bombs_mb, 1))
    record_property("near_limit_peak_rss_growth_mb", round(near_mb, 1))
    print(
        f"\nbombs ({len(BOMBS)}): peak RSS +{bombs_mb:.1f} MB over {measured['baseline_mb']:.0f} MB; "
        f"{near['side']}×{near['side']} 1-bit PNG ({near['file_bytes']:,} bytes): {near['outcome']}, "
        f"peak RSS +{near_mb:.0f} MB"
    )
    # Refused from their headers: nothing is decoded.
    assert bombs_mb < 32
    # The worst accepted picture: about 10 bytes a pixel, far below the ingest function's 3008 MB.
    assert near["outcome"] == "ready"
    assert near_mb < 12 * near["side"] ** 2 / 1e6 + 64
