"""chalicelib.logs: pixelake lines reach the output, carry their context ids, never a secret."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from chalicelib import logs

ROOT = Path(__file__).resolve().parents[2]
SECRET_URL = "postgresql+pg8000://pixelake:hunter2-secret@proxy.internal:5432/pixelake"


def run_function(code: str, **environ: str) -> subprocess.CompletedProcess:
    """`code` in a fresh process that imports app.py as a Lambda would (no DATABASE_URL needed at import)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_LAMBDA", "PIXELAKE_LOG"))}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**env, "PYTHONPATH": str(ROOT), **environ},
    )


LOG_FROM_APP = (
    "import logging, app\n"
    "from chalicelib.logs import log_context\n"
    "with log_context(image_id=7, user_id=3):\n"
    f"    logging.getLogger('pixelake.ingest').info('ingested %s', {SECRET_URL!r})\n"
    "logging.getLogger('pixelake.ingest').debug('not at info')\n"
)


def test_on_lambda_with_the_text_format_pixelake_writes_json_lines_with_ids_and_no_secret():
    out = run_function(LOG_FROM_APP, AWS_LAMBDA_FUNCTION_NAME="pixelake-dev-ingest_upload")
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(lines) == 1, out.stdout
    line = lines[0]
    assert (line["level"], line["logger"], line["image_id"], line["user_id"]) == ("INFO", "pixelake.ingest", 7, 3)
    assert "hunter2" not in out.stdout and line["message"].startswith("ingested postgresql+pg8000://pixelake:")
    assert out.stderr == ""  # not printed a second time by a root handler


def test_on_lambda_with_the_json_format_lines_go_to_the_runtime_handler_with_their_ids():
    # The Lambda runtime puts its JSON handler on the root logger; a stand-in records what reaches it.
    code = (
        "import logging\n"
        "seen = []\n"
        "class Runtime(logging.Handler):\n"
        "    def emit(self, record): seen.append((record.getMessage(), getattr(record, 'image_id', None)))\n"
        "logging.getLogger().addHandler(Runtime())\n" + LOG_FROM_APP + "import json; print(json.dumps(seen))\n"
    )
    out = run_function(code, AWS_LAMBDA_FUNCTION_NAME="pixelake-dev-ingest_upload", AWS_LAMBDA_LOG_FORMAT="JSON")
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(seen) == 1 and seen[0][1] == 7
    assert "hunter2" not in seen[0][0] and "[redacted]" in seen[0][0]


def test_console_lines_end_with_the_context_ids():
    record = logging.LogRecord("pixelake.ingest", logging.INFO, __file__, 1, "ingested %s", ("k",), None)
    record.image_id, record.user_id = 5, 2
    text = logs.ConsoleLines().format(record)
    assert text.endswith("INFO pixelake.ingest: ingested k [user_id=2 image_id=5]")


def test_context_ids_nest_and_end_with_their_block(caplog):
    logs.configure_logging()
    log = logging.getLogger("pixelake.test")
    with logs.log_context(request_id="r-1"):
        with logs.log_context(task_id=9):
            logs.bind(image_id=4)
            log.info("inner")
        log.info("outer")
    log.info("outside")
    inner, outer, outside = (r for r in caplog.records if r.name == "pixelake.test")
    assert (inner.request_id, inner.task_id, inner.image_id) == ("r-1", 9, 4)
    assert outer.request_id == "r-1" and not hasattr(outer, "task_id") and not hasattr(outer, "image_id")
    assert not hasattr(outside, "request_id")


def test_secrets_are_masked_in_messages_and_tracebacks(caplog):
    logs.configure_logging()
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
    try:
        raise RuntimeError(f"could not connect to {SECRET_URL}")
    except RuntimeError:
        logging.getLogger("pixelake.worker").exception(
            "Authorization: Bearer %s, key %s, %s", token, "pxl_abcdef123456", '{"password": "p@ss w0rd"}'
        )
    (record,) = [r for r in caplog.records if r.name == "pixelake.worker"]
    text = record.getMessage() + record.exc_text
    for secret in (token, "abcdef123456", "p@ss w0rd", "hunter2-secret"):
        assert secret not in text
    assert "Bearer [redacted]" in text and "pxl_[redacted]" in text and "proxy.internal" in text


def test_containers_write_json_lines_when_asked():
    # The Dask workers on ECS: PIXELAKE_LOG_FORMAT=json, configured by `--preload chalicelib.logs`.
    code = (
        "import logging\nfrom chalicelib import logs\nlogs.dask_setup(worker=None)\n"
        "with logs.log_context(job_id=12):\n    logging.getLogger('pixelake.jobs').info('training')\n"
    )
    out = run_function(code, PIXELAKE_LOG_FORMAT="json")
    [line] = [json.loads(text) for text in out.stdout.splitlines()]
    assert (line["logger"], line["message"], line["job_id"]) == ("pixelake.jobs", "training", 12)
