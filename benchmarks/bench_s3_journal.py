"""The local stack's S3 journal: start time with 10,000 stored objects, on day 100 as on day 1.

Three starts of moto's S3 (infra/local/s3_server.py), each in a fresh process (moto's state is
per process), timed from MotoServer() to serving:
  - empty: no journal (the first `make dev`);
  - full history: 10,000 live objects behind 5 writes each (4 PUTs and a DELETE), as a journal
    that was never compacted would hold them after a long `make dev`; the start replays it all,
    then compacts it;
  - compacted: the same 10,000 live objects, each once (the journal that start left behind).
A running server also compacts whenever its journal reaches COMPACT_FACTOR × its size after the
last compaction, so the full-history journal only exists from before that rule; its row is the
cost the rule avoids. The history is written with S3Journal.append (what the server calls for
each write) with fsync off, so the benchmark writes 50,000 entries in seconds, not minutes.

    .venv/bin/python benchmarks/bench_s3_journal.py [objects] [repeat]

(the full history's start happens once: it compacts the journal; the others are best of `repeat`)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUCKET = "bench-journal"
PUTS_PER_OBJECT = 4  # and one DELETE between the second and third: 5 writes per live object

# The history, appended as the server appends each successful write.
HISTORY = """
import os
from pathlib import Path
from infra.local.s3_server import S3Journal
os.fsync = lambda fd: None  # the benchmark's own writes: durability is not what is measured
journal = S3Journal(Path({state!r}))

def write(method, path, body=b"", content_type=None):
    environ = {{"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": ""}}
    if body:
        environ.update(CONTENT_TYPE=content_type, CONTENT_LENGTH=str(len(body)))
    journal.append(environ, body)

write("PUT", "/{bucket}")
for round_ in range({puts}):
    if round_ == 2:
        for i in range({objects}):
            write("DELETE", f"/{bucket}/uploads/1/{{i}}.jpg")
    for i in range({objects}):
        write("PUT", f"/{bucket}/uploads/1/{{i}}.jpg", os.urandom(64), "image/jpeg")
"""

START = """
import json, os, sys, time
os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
from pathlib import Path
started = time.perf_counter()
from infra.local.s3_server import MotoServer
server = MotoServer(Path({state!r}), port=0)
replayed = server.replay()
server.start()
start_s = time.perf_counter() - started
import boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=server.endpoint, config=Config(s3={{"addressing_style": "path"}}))
try:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket={bucket!r})
    objects = sum(page.get("KeyCount", 0) for page in pages)
except s3.exceptions.NoSuchBucket:
    objects = 0
server.stop()
journal = Path({state!r}, "journal.jsonl")
lines = len(journal.read_text().splitlines()) if journal.exists() else 0
print(json.dumps({{"start_s": round(start_s, 3), "replayed": replayed, "objects": objects, "journal_lines": lines}}))
"""


def _python(script: str) -> dict:
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1] or "{}")


def _lines(state: Path) -> int:
    journal = state / "journal.jsonl"
    return len(journal.read_text().splitlines()) if journal.exists() else 0


def start(state: Path) -> dict:
    return _python(START.format(state=str(state), bucket=BUCKET))


def main(objects: int = 10_000, repeat: int = 3) -> dict:
    """The full history's start once (it compacts the journal, so it happens once), then the
    compacted and the empty start, best of `repeat`."""
    with tempfile.TemporaryDirectory(prefix="pixelake-journal-") as home:
        state, empty = Path(home) / "s3", Path(home) / "empty"
        script = HISTORY.format(state=str(state), bucket=BUCKET, puts=PUTS_PER_OBJECT, objects=objects)
        subprocess.run([sys.executable, "-c", script], cwd=REPO, check=True)
        history_lines = _lines(state)
        full = start(state)  # replays the whole history, then compacts it
        compacted = min((start(state) for _ in range(repeat)), key=lambda r: r["start_s"])
        fresh = []
        for _ in range(repeat):
            shutil.rmtree(empty, ignore_errors=True)
            fresh.append(start(empty))
        first = min(fresh, key=lambda r: r["start_s"])
    report = {
        "objects": objects,
        "repeat": repeat,
        "journal_lines_full_history": history_lines,
        "journal_lines_compacted": full["journal_lines"],
        "start_s_empty": first["start_s"],
        "start_s_full_history": full["start_s"],
        "start_s_compacted": compacted["start_s"],
        "full_history_over_compacted": round(full["start_s"] / compacted["start_s"], 2),
        "compacted_ms_per_live_object": round(1000 * (compacted["start_s"] - first["start_s"]) / objects, 3),
    }
    assert full["objects"] == compacted["objects"] == objects, report
    assert compacted["journal_lines"] == objects + 1 and first["objects"] == 0, report
    return report


if __name__ == "__main__":
    print(json.dumps(main(*(int(a) for a in sys.argv[1:])), indent=1))
