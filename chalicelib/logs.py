"""Pixelake's logs: where `pixelake.*` lines go, the ids on each line, and no secrets in them.

`configure_logging()` runs once per process (app.py, the local stack, and Dask workers through
`dask worker --preload chalicelib.logs`):

- On Lambda with the JSON log format (`LoggingConfig: {LogFormat: JSON}` in infra/aws, which
  sets AWS_LAMBDA_LOG_FORMAT=JSON) the runtime's own handler on the root logger writes one JSON
  object per line with its `requestId`, and every extra attribute of a record becomes a field:
  Pixelake's lines propagate to it. On Lambda with the text format, Pixelake writes its own JSON
  lines to stdout instead (`JsonLines`), as it does wherever PIXELAKE_LOG_FORMAT=json (containers).
- Elsewhere Pixelake's loggers propagate to the root logger: the local stack's console
  (`configure_console()`: readable lines with the ids at the end) and pytest's caplog see them.

Chalice's default `configure_logs` would set the `pixelake` logger to ERROR with propagate off
and drop every info and warning line: app.py creates the app with `configure_logs=False`.

Context ids: `log_context(image_id=…)` (a `with` block) and `bind(…)` (inside one) put ids in
a contextvar; a log-record factory copies them onto every record made in that context, so
handlers Pixelake does not own (the Lambda runtime's, caplog's) see them too — a filter on the
`pixelake` logger would not run for records of its children. The factory also masks secrets in
the message and the traceback before any handler formats them.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

LOGGER_NAME = "pixelake"
# The ids that tie a request, an SQS record or a Dask job together, in the order lines show them.
CONTEXT_IDS = ("request_id", "message_id", "user_id", "image_id", "task_id", "batch_id", "job_id")

_context: ContextVar[Mapping[str, Any] | None] = ContextVar("pixelake_log_context", default=None)


def _ids() -> Mapping[str, Any]:
    return _context.get() or {}


# --- no secrets in logs ---

_SECRET_PATTERNS = (
    (re.compile(r"(?i)(bearer\s+)[\w.~+/=-]+"), r"\1[redacted]"),
    (re.compile(r"\beyJ[\w-]+\.[\w-]+\.[\w-]+"), "[redacted-jwt]"),
    (re.compile(r"\bpxl_[\w-]+"), "pxl_[redacted]"),
    (
        re.compile(r"(?i)(\"?(?:password|secret|token|api[_-]?key)\"?\s*[:=]\s*)(\"[^\"]*\"|'[^']*'|[^\s,}]+)"),
        r"\1[redacted]",
    ),
    # A database URL's password: scheme://user:password@host
    (re.compile(r"(\b[a-z][\w+.-]*://[^:/@\s]+:)[^@\s]+@"), r"\1[redacted]@"),
)


def redact(text: str) -> str:
    """The text with bearer tokens, JWTs, API keys, password/secret values and URL passwords masked."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecrets(logging.Filter):
    """Masks secrets in a record's message and traceback (the record factory does it for every
    record once configure_logging() ran; this filter serves handlers set up without it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        _redact_record(record)
        return True


def _redact_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: let the handler report it as logging does
        return
    record.msg = redact(message)
    record.args = ()
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text)


# --- context ids ---


def current_context() -> dict[str, Any]:
    return dict(_ids())


@contextmanager
def log_context(**ids: Any) -> Iterator[None]:
    """Within the block, every log line carries these ids (None values are left out)."""
    token = _context.set({**_ids(), **{k: v for k, v in ids.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def bind(**ids: Any) -> None:
    """Add ids to the current context, e.g. the image id once an ingest has claimed it. Inside a
    `log_context` block they end with it."""
    _context.set({**_ids(), **{k: v for k, v in ids.items() if v is not None}})


_installed: dict[str, Any] = {}  # "factory": the record factory ours wraps, once installed


def _record_with_context(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _installed["factory"](*args, **kwargs)
    for name, value in _ids().items():
        if not hasattr(record, name):
            setattr(record, name, value)
    _redact_record(record)
    return record


# --- formatters ---

_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _RECORD_ATTRIBUTES and not k.startswith("_")}


class JsonLines(logging.Formatter):
    """One JSON object per line: timestamp, level, logger, message, the context ids and extras."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(_extras(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["stackTrace"] = record.exc_text
        return json.dumps(line, default=str, ensure_ascii=False)


class ConsoleLines(logging.Formatter):
    """`12:00:01 INFO pixelake.ingest: ingested … [image_id=3 user_id=1]` for a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = [f"{name}={getattr(record, name)}" for name in CONTEXT_IDS if getattr(record, name, None) is not None]
        if not ids:
            return text
        first, newline, rest = text.partition("\n")
        return f"{first} [{' '.join(ids)}]{newline}{rest}"


# --- setup ---


def _level(environ: Mapping[str, str]) -> str:
    return (environ.get("PIXELAKE_LOG_LEVEL") or environ.get("AWS_LAMBDA_LOG_LEVEL") or "INFO").upper()


def configure_logging(environ: Mapping[str, str] | None = None) -> None:
    """Make `pixelake.*` lines reach the output of this process (see the module docstring).
    Safe to call more than once."""
    environ = os.environ if environ is None else environ
    if "factory" not in _installed:
        _installed["factory"] = logging.getLogRecordFactory()
        logging.setLogRecordFactory(_record_with_context)
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(_level(environ))
    for handler in [h for h in logger.handlers if getattr(h, "_pixelake", False)]:
        logger.removeHandler(handler)
    on_lambda = bool(environ.get("AWS_LAMBDA_FUNCTION_NAME"))
    runtime_json = on_lambda and environ.get("AWS_LAMBDA_LOG_FORMAT", "").upper() == "JSON"
    # PIXELAKE_LOG_FORMAT=json: containers (the Dask workers on ECS, whose stdout is CloudWatch's).
    if (on_lambda and not runtime_json) or environ.get("PIXELAKE_LOG_FORMAT", "").lower() == "json":
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(JsonLines())
        handler._pixelake = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False  # a text handler on the root (the runtime's, Dask's) would print it again
    else:
        logger.propagate = True


def configure_console(level: str | None = None) -> None:
    """The local stack's console: readable lines on stderr with the ids at the end."""
    configure_logging()
    root = logging.getLogger()
    if not any(getattr(h, "_pixelake", False) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(ConsoleLines())
        handler._pixelake = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(logging.WARNING)  # other libraries' info lines would drown Pixelake's
    logging.getLogger(LOGGER_NAME).setLevel((level or _level(os.environ)).upper())


def dask_setup(worker: Any) -> None:
    """`dask worker --preload chalicelib.logs`: the jobs' pixelake lines reach the worker's output."""
    configure_logging()
