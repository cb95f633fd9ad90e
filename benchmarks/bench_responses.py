"""What encoding an answer through its declared response type costs, on the largest list page.

GET /api/images?limit=100 with three thumbnails and an EXIF summary per image: the route wrapper
now converts the view's dicts into the declared `ImagePage` (checking every field) and encodes it
with msgspec, where it used to turn them into plain JSON types and leave Chalice's json.dumps to
write the text. Reference in the same run: presigning the page's 300 thumbnail URLs, which the
view does anyway for every such page.

    .venv/bin/python benchmarks/bench_responses.py
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "benchmarks"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

PAGE = 100
THUMBNAILS = (128, 256, 512)


def image_page(urls: list[str]) -> dict:
    """A page shaped as images.image_json makes it (datetimes as the ORM gives them)."""
    created = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    items = []
    for i in range(PAGE):
        items.append(
            {
                "id": 10_000 - i,
                "status": "ready",
                "error": None,
                "filename": f"holiday-{i:03d}.jpg",
                "content_type": "image/jpeg",
                "format": "JPEG",
                "width": 4032,
                "height": 3024,
                "size_bytes": 3_456_789 + i,
                "sha256": f"{i:064x}",
                "phash": f"{i * 7919:016x}",
                "metadata": {
                    "mode": "RGB",
                    "orientation": 1,
                    "exif": {"make": "Canon", "model": "EOS R6", "iso": 200, "exposure_time": "1/250", "f_number": 4.0},
                },
                "thumbnails": [
                    {"width": size, "height": size * 3 // 4, "format": "webp", "url": urls[i * len(THUMBNAILS) + n]}
                    for n, size in enumerate(THUMBNAILS)
                ],
                "created_at": created - timedelta(minutes=i),
                "processed_at": created - timedelta(minutes=i) + timedelta(seconds=2),
            }
        )
    return {"items": items, "next_cursor": str(10_000 - PAGE + 1)}


def run(repeat: int = 200) -> dict:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "benchmark")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "benchmark")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("PIXELAKE_BUCKET", "pixelake-benchmark")
    import msgspec
    from chalice import Response
    from timing import best_of

    import app  # noqa: F401  (declares the routes)
    from chalicelib import storage
    from chalicelib.api.routing import ROUTES, _encoded

    doc = next(r for r in ROUTES if (r.method, r.path) == ("GET", "/api/images"))
    keys = [f"thumbnails/{i}/{size}.webp" for i in range(PAGE) for size in THUMBNAILS]
    page = image_page([storage.presign_get(key) for key in keys])

    def before() -> str:  # plain JSON types, then what Chalice's Response.to_dict does with a dict body
        return json.dumps(msgspec.to_builtins(page), separators=(",", ":"))

    def after() -> str:
        response = Response(body=page, status_code=200, headers={"Content-Type": "application/json"})
        return _encoded(doc, response).body

    def presign() -> list[str]:
        return [storage.presign_get(key) for key in keys]

    assert json.loads(before()) == json.loads(after())
    timings = best_of(repeat, {"before": before, "after": after, "presign_reference": presign})
    result = {name: t.as_dict() for name, t in timings.items()}
    result["after_over_before"] = round(timings["after"].cpu_ms / timings["before"].cpu_ms, 3)
    result["change_over_presign"] = round(
        (timings["after"].cpu_ms - timings["before"].cpu_ms) / timings["presign_reference"].cpu_ms, 4
    )
    result["body_bytes"] = len(after())
    return result


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
