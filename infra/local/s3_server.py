"""moto's S3 + SQS server on loopback, with S3 writes kept on disk across restarts.

moto keeps everything in memory. Losing a user's files on a restart is losing data, so every
successful S3 write (object PUT/POST/DELETE, bucket creation) is appended to a journal under
$PIXELAKE_HOME/s3 before the response returns, and replayed into a fresh server on start —
the idea of moto's own request recorder, restricted to S3 writes (replaying SQS traffic would
re-deliver old messages). The journal is compacted to the live state (each bucket and each
existing object once) after each replay at start, and while the server runs whenever it has grown
to COMPACT_FACTOR × its size after the last compaction: a start replays what exists, not the
history, however long `make dev` has run (benchmarks/bench_s3_journal.py measures it).
Multipart uploads are not replayable (upload ids change): the
project's own writes use single PUTs and presigned POSTs.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import threading
from pathlib import Path
from urllib.parse import quote, unquote

from werkzeug.serving import make_server
from werkzeug.test import EnvironBuilder, run_wsgi_app

_WRITE_METHODS = {"PUT", "POST", "DELETE"}
# Bucket configuration is set by the stack on every start, never replayed (a replayed
# notification would re-announce every old upload).
_CONFIG_QUERIES = ("notification", "cors", "lifecycle", "policy", "tagging", "versioning")
# A running server compacts its journal once it holds this many times the entries it had after
# the last compaction (and at least COMPACT_MIN_ENTRIES): the journal stays within ~2× the live
# set, and each compaction, which rewrites every live object, is paid for by as many new writes.
COMPACT_FACTOR = 2
COMPACT_MIN_ENTRIES = 1000


def _dispatcher_class():
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    class JournaledDispatcher(DomainDispatcherApplication):
        """moto's dispatcher, journaling S3 writes (without a journal: moto's, only faster)."""

        def __init__(self, create_app, journal: S3Journal | None):
            super().__init__(create_app)
            self.journal = journal
            self._backend_by_host: dict[str | None, object] = {}

        def get_backend_for_host(self, host):
            # moto lists its package's directory to match a host, twice per request (~10 ms of
            # each S3 write and of each replayed entry here); a host's backend never changes.
            if host not in self._backend_by_host:
                self._backend_by_host[host] = super().get_backend_for_host(host)
            return self._backend_by_host[host]

        def s3_app(self):
            """The S3 backend's app: replayed entries are S3 writes, nothing to infer."""
            with self.lock:
                if "s3" not in self.app_instances:
                    self.app_instances["s3"] = self.create_app("s3")
                return self.app_instances["s3"]

        def __call__(self, environ, start_response):
            app = self.get_application(environ)
            if self.journal is None or not self.journal.wants(environ, app is self.app_instances.get("s3")):
                return app(environ, start_response)
            body = _read_body(environ)
            environ["wsgi.input"] = io.BytesIO(body)
            status = {}

            def capture(status_line, headers, exc_info=None):
                status["code"] = int(status_line.split()[0])
                return start_response(status_line, headers, exc_info)

            # One write at a time: a compaction reads moto's state while no write changes it.
            with self.journal.writing:
                response = list(app(environ, capture))  # consume so the status is known before journaling
                if 200 <= status.get("code", 500) < 300:
                    self.journal.append(environ, body)
                    if self.journal.compaction_due():
                        self.journal.compact()
            return response

    return JournaledDispatcher


def _read_body(environ) -> bytes:
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    if length:
        return stream.read(int(length))
    return stream.read() if environ.get("wsgi.input_terminated") else b""


class S3Journal:
    """Append-only log of S3 writes: one JSON line per request, bodies in numbered files."""

    def __init__(
        self, directory: Path, compact_factor: float | None = COMPACT_FACTOR, compact_min: int = COMPACT_MIN_ENTRIES
    ):
        """compact_factor None: never compact while running (only at start)."""
        self.directory = directory
        self.compact_factor, self.compact_min = compact_factor, compact_min
        self.bodies = directory / "bodies"
        directory.mkdir(parents=True, exist_ok=True)
        self._recover()
        self.bodies.mkdir(parents=True, exist_ok=True)
        self.log_path = directory / "journal.jsonl"
        self.lock = threading.Lock()
        self.writing = threading.Lock()
        self.replaying = False
        self.count = sum(1 for _ in self.log_path.open()) if self.log_path.exists() else 0
        self.compacted_count = self.count  # the entries after the last compaction (or at start)

    def compaction_due(self) -> bool:
        """The journal has grown to compact_factor × its size after the last compaction."""
        if self.compact_factor is None:
            return False
        return self.count >= max(self.compact_min, self.compact_factor * self.compacted_count)

    def wants(self, environ, is_s3: bool) -> bool:
        if self.replaying or not is_s3 or environ["REQUEST_METHOD"] not in _WRITE_METHODS:
            return False
        query = environ.get("QUERY_STRING", "")
        return not any(q in query for q in _CONFIG_QUERIES)

    def append(self, environ, body: bytes) -> None:
        headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(key):
                headers[key.replace("_", "-").title()] = environ[key]
        with self.lock:
            self.count += 1
            body_file = self.bodies / f"{self.count:09d}"
            body_file.write_bytes(body)
            entry = {
                "method": environ["REQUEST_METHOD"],
                "path": environ.get("RAW_URI") or environ["PATH_INFO"],
                "query": environ.get("QUERY_STRING", ""),
                "headers": headers,
                "body": body_file.name,
            }
            with self.log_path.open("a") as log:
                log.write(json.dumps(entry) + "\n")
                log.flush()
                os.fsync(log.fileno())

    def _recover(self) -> None:
        """Finish or undo a compaction a crash interrupted (see `compact` for the order of steps)."""
        next_log, next_bodies, old_bodies = self._compaction_paths()
        if next_log.exists():
            if next_bodies.exists():  # the new bodies were not moved in yet: keep the old journal
                shutil.rmtree(next_bodies)
                next_log.unlink()
                if not self.bodies.exists() and old_bodies.exists():
                    old_bodies.rename(self.bodies)
            else:  # the new bodies are in place: the new journal goes with them
                os.replace(next_log, self.log_path)
        if old_bodies.exists():
            shutil.rmtree(old_bodies)

    def _compaction_paths(self) -> tuple[Path, Path, Path]:
        return (
            self.directory / "journal.jsonl.next",
            self.directory / "bodies.next",
            self.directory / "bodies.old",
        )

    def compact(self) -> int:
        """Rewrite the journal as the state the replay produced: each bucket it created once, then
        each live object once (deleted and overwritten ones dropped), so the next start replays
        what exists, not every write ever made. Returns the entries written (0 when the journal
        was compact already: nothing is rewritten).

        Crash-safe: the new journal and bodies are written beside the old ones, then the bodies
        directory and the journal are swapped by renames; `_recover` finishes or undoes a swap
        that was interrupted."""
        from moto.s3.models import s3_backends

        if not self.log_path.exists():
            return 0
        created: dict[str, dict] = {}  # bucket → its creation entry (path-style /bucket, no query)
        lines = self.log_path.read_text().splitlines()
        stored = 0  # object entries a compaction wrote (replayed without HTTP)
        for line in lines:
            entry = json.loads(line)
            stored += bool(entry.get("stored"))
            path = entry["path"].partition("?")[0].strip("/")
            if entry["method"] == "PUT" and path and "/" not in path and not entry["query"]:
                created[unquote(path)] = entry
        # moto's backends are per process: take only the buckets this journal created.
        buckets = {
            name: bucket
            for regions in s3_backends.values()
            for name, bucket in regions["global"].buckets.items()
            if name in created
        }
        live = sum(1 for bucket in buckets.values() for key in bucket.keys.values() if hasattr(key, "value"))
        if len(buckets) + live == len(lines) and stored == live:
            self.compacted_count = self.count
            return 0  # compact already: every entry is a live bucket or a stored object
        next_log, next_bodies, old_bodies = self._compaction_paths()
        next_bodies.mkdir(parents=True, exist_ok=True)
        written = 0
        with next_log.open("w") as log:

            def write(entry: dict, body: bytes) -> None:
                nonlocal written
                written += 1
                (next_bodies / f"{written:09d}").write_bytes(body)
                log.write(json.dumps({**entry, "body": f"{written:09d}"}) + "\n")

            for name in buckets:
                write(created[name], (self.bodies / created[name]["body"]).read_bytes())
            for name, bucket in buckets.items():
                for key in bucket.keys.values():
                    if not hasattr(key, "value"):  # a delete marker of a versioned bucket
                        continue
                    value = key.value
                    headers = {
                        "-".join(part.capitalize() for part in header.split("-")): str(v)
                        for header, v in key.metadata.items()
                        if header != "x-amz-content-sha256"
                    }
                    headers["Content-Length"] = str(len(value))
                    path = f"/{quote(name)}/{quote(key.name, safe='/~')}"
                    # "stored": a plain PUT of what moto held, restored without HTTP (see `replay`).
                    write({"method": "PUT", "path": path, "query": "", "headers": headers, "stored": True}, value)
            log.flush()
            os.fsync(log.fileno())
        self.bodies.rename(old_bodies)
        next_bodies.rename(self.bodies)
        os.replace(next_log, self.log_path)
        shutil.rmtree(old_bodies)
        with self.lock:
            self.count = self.compacted_count = written
        return written

    def replay(self, dispatcher) -> int:
        """Run each entry through the S3 app of `dispatcher` (a JournaledDispatcher); an object
        that a compaction stored goes straight into moto's backend, as its PUT handler would
        put it (~10× faster than a request through moto's Flask app, which is most of a start)."""
        if not self.log_path.exists():
            return 0
        app = dispatcher.s3_app()
        self.replaying = True
        replayed = 0
        try:
            for line in self.log_path.read_text().splitlines():
                entry = json.loads(line)
                if entry.get("stored") and _put_stored(entry, (self.bodies / entry["body"]).read_bytes()):
                    replayed += 1
                    continue
                path, _, raw_query = entry["path"].partition("?")
                builder = EnvironBuilder(
                    method=entry["method"],
                    path=path,
                    query_string=raw_query or entry["query"],
                    headers=entry["headers"],
                    data=(self.bodies / entry["body"]).read_bytes(),
                )
                environ = builder.get_environ()
                environ["PATH_INFO"] = _unquote_path(path)
                run_wsgi_app(app, environ)
                replayed += 1
        finally:
            self.replaying = False
        return replayed


def _unquote_path(path: str) -> str:
    return unquote(path)


def _put_stored(entry: dict, body: bytes) -> bool:
    """An object a compaction wrote (a plain PUT: the bucket, the key, its metadata headers) put
    into moto's backend the way moto's PUT handler does, without its notification. False when
    its bucket is not in this process's moto (the entry is then replayed as a request)."""
    from moto.s3.models import s3_backends
    from moto.s3.utils import metadata_from_headers

    bucket_name, _, key_name = unquote(entry["path"]).lstrip("/").partition("/")
    for regions in s3_backends.values():
        backend = regions["global"]
        bucket = backend.buckets.get(bucket_name)
        if bucket is not None:
            key = backend.put_object(bucket_name, key_name, body, disable_notification=True)
            key.set_metadata(metadata_from_headers(entry["headers"]))
            key.set_acl(bucket.acl)
            return True
    return False


class MotoServer:
    """moto on 127.0.0.1 in a thread; `port=0` picks a free port."""

    def __init__(self, state_dir: Path | None, port: int = 0, compact_factor: float | None = COMPACT_FACTOR):
        from moto.moto_server.werkzeug_app import MotoRequestHandler, create_backend_app

        self.journal = S3Journal(state_dir, compact_factor) if state_dir else None
        dispatcher = _dispatcher_class()(create_backend_app, self.journal)
        self.app = dispatcher
        self.server = make_server("127.0.0.1", port, dispatcher, threaded=True, request_handler=MotoRequestHandler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="moto", daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> MotoServer:
        self.thread.start()
        return self

    def replay(self) -> int:
        """Replay the journal into this (fresh) server, then compact it to what is live."""
        if not self.journal:
            return 0
        replayed = self.journal.replay(self.app)
        if replayed:
            self.journal.compact()
        return replayed

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
