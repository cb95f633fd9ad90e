"""SQS: send work to the `tasks` and `ml-tasks` queues (the `uploads` queue is fed by S3)."""

from __future__ import annotations

import functools
import json

from chalicelib.config import get_settings


@functools.cache
def sqs_client():
    from chalicelib import aws

    settings = get_settings()
    settings.refuse_real_aws_on_local_stage()
    return aws.client("sqs", region_name=settings.aws_region, endpoint_url=settings.aws_endpoint_url or None)


@functools.cache
def queue_url(name: str) -> str:
    return sqs_client().get_queue_url(QueueName=name)["QueueUrl"]


def send(queue_name: str, body: dict) -> str:
    return sqs_client().send_message(QueueUrl=queue_url(queue_name), MessageBody=json.dumps(body))["MessageId"]
