"""moto's S3 + SQS server on loopback, with S3 writes kept on disk across restarts.

moto keeps everything in memory. Losing a user's files on a restart is losing data, so every
successful S3 write (object PUT/POST/DELETE, bucket creation) is appended to a journal under
$PIXELAKE_HOME/s3 before the response returns, and replayed into a fresh server on start —
the idea of moto's own request recorder, restricted to S3 writes (replaying SQS traffic would
re-deliver old messages). Multipart uploads are not replayable (upload ids change): the
project's own writes use single PUTs and presigned POSTs.
"""

from __future__ import annotations

import io
import json
import os
import threading
from pathlib import Path

from werkzeug.serving import make_server
from werkzeug.test import EnvironBuilder, run_wsgi_app

_WRITE_METHODS = {"PUT", "POST", "DELETE"}
# Bucket configuration is set by the stack on every start, never replayed (a replayed
# notification would re-announce every old upload).
_CONFIG_QUERIES = ("notification", "cors", "lifecycle", "policy", "tagging", "versioning")


def _dispatcher_class():
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    class JournaledDispatcher(DomainDispatcherApplication):
        def __init__(self, create_app, journal: S3Journal):
            super().__init__(create_app)
            self.journal = journal

        def __call__(self, environ, start_response):
            app = self.get_application(environ)
            if not self.journal.wants(environ, app is self.app_instances.get("s3")):
                return app(environ, start_response)
            body = _read_body(environ)
            environ["wsgi.input"] = io.BytesIO(body)
            status = {}

            def capture(status_line, headers, exc_info=None):
                status["code"] = int(status_line.split()[0])
                return start_response(status_line, headers, exc_info)

            response = list(app(environ, capture))  # consume so the status is known before journaling
            if 200 <= status.get("code", 500) < 300:
                self.journal.append(environ, body)
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

    def __init__(self, directory: Path):
        self.directory = directory
        self.bodies = directory / "bodies"
        self.bodies.mkdir(parents=True, exist_ok=True)
        self.log_path = directory / "journal.jsonl"
        self.lock = threading.Lock()
        self.replaying = False
        self.count = sum(1 for _ in self.log_path.open()) if self.log_path.exists() else 0

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

    def replay(self, app) -> int:
        if not self.log_path.exists():
            return 0
        self.replaying = True
        replayed = 0
        try:
            for line in self.log_path.read_text().splitlines():
                entry = json.loads(line)
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
    from urllib.parse import unquote

    return unquote(path)


class MotoServer:
    """moto on 127.0.0.1 in a thread; `port=0` picks a free port."""

    def __init__(self, state_dir: Path | None, port: int = 0):
        from moto.moto_server.werkzeug_app import MotoRequestHandler, create_backend_app

        self.journal = S3Journal(state_dir) if state_dir else None
        dispatcher = _dispatcher_class()(create_backend_app, self.journal) if self.journal else None
        if dispatcher is None:
            from moto.moto_server.werkzeug_app import DomainDispatcherApplication

            dispatcher = DomainDispatcherApplication(create_backend_app)
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
        return self.journal.replay(self.app) if self.journal else 0

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
