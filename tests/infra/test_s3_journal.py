"""The local stack's S3 journal: a restart keeps every live object (body, type, metadata) and the
journal holds each live object once, so its size follows what exists, not the history. Each
server lifetime is its own process, as a `make dev` restart is (moto's state is per process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

LIFETIME = """
import json, os
from pathlib import Path
os.environ.update(AWS_ACCESS_KEY_ID="t", AWS_SECRET_ACCESS_KEY="t", AWS_DEFAULT_REGION="us-east-1")
import boto3
from botocore.config import Config
from infra.local.s3_server import MotoServer
server = MotoServer(Path({state!r}), port=0)
replayed = server.replay()
server.start()
s3 = boto3.client("s3", endpoint_url=server.endpoint, config=Config(s3={{"addressing_style": "path"}}))
{work}
objects = {{}}
for page in s3.get_paginator("list_objects_v2").paginate(Bucket="journal-test"):
    for item in page.get("Contents", []):
        got = s3.get_object(Bucket="journal-test", Key=item["Key"])
        objects[item["Key"]] = [got["Body"].read().decode(), got["ContentType"], got["Metadata"]]
server.stop()
lines = len(Path({state!r}, "journal.jsonl").read_text().splitlines())
print(json.dumps({{"replayed": replayed, "objects": objects, "journal_lines": lines}}))
"""

HISTORY = """
s3.create_bucket(Bucket="journal-test")
for i in range(5):
    for version in range(3):  # each object overwritten twice
        s3.put_object(Bucket="journal-test", Key=f"uploads/1/photo {i}+x.jpg", Body=f"v{version}-{i}".encode(),
                      ContentType="image/jpeg", Metadata={"owner": "1"})
s3.delete_object(Bucket="journal-test", Key="uploads/1/photo 0+x.jpg")
s3.delete_objects(Bucket="journal-test", Delete={"Objects": [{"Key": "uploads/1/photo 1+x.jpg"}]})
s3.put_object(Bucket="journal-test", Key="thumbnails/2/256.jpeg", Body=b"thumb", ContentType="image/jpeg")
"""


def lifetime(state: Path, work: str = "") -> dict:
    script = LIFETIME.format(state=str(state), work=work)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_restarts_keep_the_live_objects_and_the_journal_holds_each_once(tmp_path):
    state = tmp_path / "s3"
    first = lifetime(state, HISTORY)
    assert first["journal_lines"] == 1 + 15 + 2 + 1  # the whole history, as written
    live = first["objects"]
    assert sorted(live) == ["thumbnails/2/256.jpeg"] + [f"uploads/1/photo {i}+x.jpg" for i in (2, 3, 4)]
    assert live["uploads/1/photo 2+x.jpg"] == ["v2-2", "image/jpeg", {"owner": "1"}]

    second = lifetime(state)  # replays the history, then compacts it
    assert second["objects"] == live
    assert second["journal_lines"] == 1 + len(live)  # the bucket, then each live object once
    third = lifetime(state)  # replays the compacted journal: the same state
    assert (third["objects"], third["replayed"], third["journal_lines"]) == (live, 1 + len(live), 1 + len(live))
    assert sorted(p.name for p in (state / "bodies").iterdir()) == [f"{n:09d}" for n in range(1, 2 + len(live))]


def test_an_interrupted_compaction_is_undone_or_finished_on_the_next_start(tmp_path):
    state = tmp_path / "s3"
    live = lifetime(state, HISTORY)["objects"]
    # A crash after the old bodies were moved aside, before the new ones were moved in: undone.
    (state / "bodies").rename(state / "bodies.old")
    (state / "bodies.next").mkdir()
    (state / "journal.jsonl.next").write_text("")
    assert lifetime(state)["objects"] == live
    assert not any((state / name).exists() for name in ("bodies.old", "bodies.next", "journal.jsonl.next"))


OVERWRITES = """
server.journal.compact_min = 10  # compact at 10 entries, then whenever the journal doubles
s3.create_bucket(Bucket="journal-test")
for version in range(60):
    s3.put_object(Bucket="journal-test", Key="uploads/1/a.jpg", Body=f"v{version}".encode(), ContentType="image/jpeg")
s3.put_object(Bucket="journal-test", Key="uploads/1/b.jpg", Body=b"b", ContentType="image/png")
"""


def test_a_running_server_compacts_its_journal_as_it_grows(tmp_path):
    state = tmp_path / "s3"
    first = lifetime(state, OVERWRITES)  # 62 writes without a restart
    live = {"uploads/1/a.jpg": ["v59", "image/jpeg", {}], "uploads/1/b.jpg": ["b", "image/png", {}]}
    assert first["objects"] == live
    # Compacted while running: never more than twice the entries of the last compaction (the
    # bucket and the one object, so at most 10, the minimum, between compactions), not 62.
    assert first["journal_lines"] <= 10
    second = lifetime(state)
    assert second["objects"] == live and second["replayed"] == first["journal_lines"]
