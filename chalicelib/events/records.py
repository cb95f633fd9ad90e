"""The loop every SQS handler shares: one record at a time, partial-batch failures.

A record whose body cannot be parsed is dropped (logged): retrying cannot fix it. A record
whose handling raises is a transient fault: it is reported in `batchItemFailures`, so SQS
(ReportBatchItemFailures) retries only that record and, after maxReceiveCount, dead-letters it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from chalicelib import metrics
from chalicelib.logs import log_context

log = logging.getLogger("pixelake.sqs")


def _queue_wait(record: dict) -> None:
    """QueueWait: the record's time in its queue, from SQS's SentTimestamp to now."""
    sent_ms = (record.get("attributes") or {}).get("SentTimestamp")
    if sent_ms and str(sent_ms).isdigit():
        queue = str(record.get("eventSourceARN", "")).rsplit(":", 1)[-1] or "unknown"
        metrics.queue_wait(queue, time.time() * 1000 - int(sent_ms))


def handle_records(event, parse: Callable[[str], Any], handle: Callable[[Any], None], *, expects: str) -> dict:
    failures = []
    invocation = getattr(getattr(event, "context", None), "aws_request_id", None)
    for record in event:
        raw = record.to_dict()
        message_id = raw.get("messageId")
        with log_context(request_id=invocation, message_id=message_id):
            _queue_wait(raw)
            try:
                message = parse(record.body)
            except (ValueError, KeyError, TypeError):
                log.error("dropping message %s: not %s", message_id, expects)
                continue
            try:
                handle(message)
            except Exception:
                log.exception("transient failure on message %s; it will be retried", message_id)
                failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}
