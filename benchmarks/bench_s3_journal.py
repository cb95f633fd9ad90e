"""The local stack's S3 journal: start time (replay) with N stored objects, before and after
compaction. Each start runs in a fresh process (moto's state is per process).

    .venv/bin/python benchmarks/bench_s3_journal.py [objects] [overwrites per object]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SERVER = """
import json, os, sys, time
os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
import boto3
from botocore.config import Config
from pathlib import Path
from infra.local.s3_server import MotoServer
started = time.perf_counter()
server = MotoServer(Path({state!r}), port=0)
replayed = server.replay()
server.start()
start_s = time.perf_counter() - started
s3 = boto3.client("s3", endpoint_url=server.endpoint, config=Config(s3={{"addressing_style": "path"}}))
{work}
lines = sum(1 for _ in open({journal!r})) if os.path.exists({journal!r}) else 0
server.stop()
print(json.dumps({{"start_s": round(start_s, 3), "replayed": replayed, "journal_lines": lines, **result}}))
"""

WRITE = """
s3.create_bucket(Bucket="bench-journal")
for round_ in range({rounds}):
    for i in range({objects}):
        s3.put_object(Bucket="bench-journal", Key=f"uploads/1/{{i}}.jpg", Body=os.urandom(64), ContentType="image/jpeg")
result = {{}}
"""

COUNT = """
pages = s3.get_paginator("list_objects_v2").paginate(Bucket="bench-journal")
result = {"objects": sum(page.get("KeyCount", 0) for page in pages)}
"""


def run(state: Path, work: str) -> dict:
    script = SERVER.format(state=str(state), journal=str(state / "journal.jsonl"), work=work)
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(objects: int = 10_000, rounds: int = 2) -> dict:
    with tempfile.TemporaryDirectory(prefix="pixelake-journal-") as home:
        state = Path(home) / "s3"
        written = run(state, WRITE.format(objects=objects, rounds=rounds))
        first = run(state, COUNT)  # replays the whole history, then compacts
        second = run(state, COUNT)  # replays each live object once
    report = {
        "objects": objects,
        "writes": objects * rounds + 1,
        "journal_lines_before": written["journal_lines"],
        "start_s_full_history": first["start_s"],
        "journal_lines_after": first["journal_lines"],
        "start_s_compacted": second["start_s"],
        "objects_after_restarts": second["objects"],
    }
    assert first["objects"] == second["objects"] == objects, report
    return report


if __name__ == "__main__":
    print(json.dumps(main(*(int(a) for a in sys.argv[1:])), indent=1))
