"""SQS: send work to the `tasks` and `ml-tasks` queues (the `uploads` queue is fed by S3)."""
from __future__ import annotations

import functools
import json

from chalicelib.config import get_settings


@functools.cache
def sqs_client():
    import boto3

    settings = get_settings()
    return boto3.client("sqs", region_name=settings.aws_region, endpoint_url=settings.aws_endpoint_url or None)


@functools.cache
def queue_url(name: str) -> str:
    return sqs_client().get_queue_url(QueueName=name)["QueueUrl"]


def send(queue_name: str, body: dict) -> str:
    return sqs_client().send_message(QueueUrl=queue_url(queue_name), MessageBody=json.dumps(body))["MessageId"]


def send_many(queue_name: str, bodies: list[dict]) -> None:
    """Send in batches of ten (SQS's limit per call); raise if any entry failed."""
    url = queue_url(queue_name)
    for start in range(0, len(bodies), 10):
        entries = [{"Id": str(i), "MessageBody": json.dumps(b)} for i, b in enumerate(bodies[start:start + 10])]
        failed = sqs_client().send_message_batch(QueueUrl=url, Entries=entries).get("Failed")
        if failed:
            raise RuntimeError(f"SQS refused {len(failed)} message(s): {failed[0].get('Message')}")
