"""`python -m infra.local.redrive [QUEUE]`: move the local stack's dead letters back to their
queue (uploads by default) so they are processed again — what `aws sqs start-message-move-task`
does on AWS (docs/operations.md). Ingest and tasks are idempotent: a redrive is always safe.

The stack's moto endpoint is AWS_ENDPOINT_URL, else http://127.0.0.1:5001 (`make dev`'s).
"""

from __future__ import annotations

import os
import sys


def redrive(sqs, queue_url: str, dead_letter_url: str) -> int:
    """Send every message of the dead-letter queue back to the queue, then delete it; returns the count."""
    moved = 0
    while True:
        messages = sqs.receive_message(
            QueueUrl=dead_letter_url, MaxNumberOfMessages=10, VisibilityTimeout=60, WaitTimeSeconds=1
        ).get("Messages", [])
        if not messages:
            return moved
        for message in messages:
            sqs.send_message(QueueUrl=queue_url, MessageBody=message["Body"])
            sqs.delete_message(QueueUrl=dead_letter_url, ReceiptHandle=message["ReceiptHandle"])
            moved += 1


def main(argv: list[str]) -> int:
    os.environ.setdefault("AWS_ENDPOINT_URL", "http://127.0.0.1:5001")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "pixelake-local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "pixelake-local")
    from chalicelib import queues
    from chalicelib.config import get_settings

    settings = get_settings()
    queue = {"uploads": settings.uploads_queue, "tasks": settings.tasks_queue, "ml-tasks": settings.ml_tasks_queue}[
        argv[0] if argv else "uploads"
    ]
    moved = redrive(queues.sqs_client(), queues.queue_url(queue), queues.queue_url(f"{queue}-dlq"))
    print(f"{moved} message(s) moved from {queue}-dlq back to {queue}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
