"""The bucket, queues, dead-letter queues and S3 → SQS notification, as infra/aws creates them.

Idempotent: run on every start of the local stack (and by tests against a fresh moto).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from chalicelib.config import Settings

MAX_RECEIVE_COUNT = 5


@dataclass(frozen=True)
class QueueSpec:
    name: str
    visibility_timeout_s: int


def queue_specs(settings: Settings) -> list[QueueSpec]:
    # ≥ 6× the consuming function's timeout, as AWS recommends for Lambda event sources.
    return [
        QueueSpec(settings.uploads_queue, 720),
        QueueSpec(settings.tasks_queue, 720),
        QueueSpec(settings.ml_tasks_queue, 720),
        QueueSpec(settings.inference_queue, 720),
    ]


def ensure_queue(sqs, spec: QueueSpec) -> str:
    dlq_url = sqs.create_queue(QueueName=f"{spec.name}-dlq", Attributes={"MessageRetentionPeriod": "1209600"})[
        "QueueUrl"
    ]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return sqs.create_queue(
        QueueName=spec.name,
        Attributes={
            "VisibilityTimeout": str(spec.visibility_timeout_s),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}),
        },
    )["QueueUrl"]


def ensure_bucket(s3, settings: Settings) -> None:
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=settings.bucket)
    except ClientError:
        kwargs = (
            {}
            if settings.aws_region == "us-east-1"
            else {"CreateBucketConfiguration": {"LocationConstraint": settings.aws_region}}
        )
        s3.create_bucket(Bucket=settings.bucket, **kwargs)
    s3.put_bucket_cors(
        Bucket=settings.bucket,
        CORSConfiguration={
            "CORSRules": [
                {
                    "AllowedMethods": ["GET", "POST", "PUT", "HEAD"],
                    "AllowedOrigins": ["*"],
                    "AllowedHeaders": ["*"],
                    "ExposeHeaders": ["ETag"],
                    "MaxAgeSeconds": 3600,
                }
            ]
        },
    )


def provision(s3, sqs, settings: Settings) -> dict[str, str]:
    """Create everything; returns queue name → URL."""
    ensure_bucket(s3, settings)
    urls = {spec.name: ensure_queue(sqs, spec) for spec in queue_specs(settings)}
    uploads_arn = sqs.get_queue_attributes(QueueUrl=urls[settings.uploads_queue], AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=settings.bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "Id": "uploads-to-ingest",
                    "QueueArn": uploads_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "uploads/"}]}},
                }
            ]
        },
    )
    return urls
