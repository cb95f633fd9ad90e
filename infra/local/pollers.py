"""Long-poll SQS queues and invoke the Chalice handlers exactly as the Lambda event source does.

The event has Lambda's SQS shape; messages are deleted only after the handler returns, and
only those not listed in its `batchItemFailures`. A handler that raises deletes nothing: the
messages come back after the visibility timeout and end in the dead-letter queue.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

log = logging.getLogger("pixelake.pollers")


class LambdaContext:
    """The few attributes of Lambda's context object that handlers may read."""

    def __init__(self, function_name: str, timeout_s: int = 900):
        self.function_name = function_name
        self.aws_request_id = str(uuid.uuid4())
        self.memory_limit_in_mb = 3008
        self._timeout_ms = timeout_s * 1000

    def get_remaining_time_in_millis(self) -> int:
        return self._timeout_ms


def sqs_event(messages: list[dict], queue_arn: str, region: str) -> dict:
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": m.get("MessageAttributes", {}),
                "md5OfBody": m.get("MD5OfBody"),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for m in messages
        ]
    }


class QueuePoller(threading.Thread):
    def __init__(
        self,
        sqs,
        queue_url: str,
        handler,
        *,
        name: str,
        batch_size: int = 10,
        wait_s: int = 2,
        region: str = "us-east-1",
    ):
        super().__init__(name=f"poller-{name}", daemon=True)
        self.sqs = sqs
        self.queue_url = queue_url
        self.handler = handler
        self.function_name = name
        self.batch_size = batch_size
        self.wait_s = wait_s
        self.region = region
        self.stopping = threading.Event()
        self.queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.poll_once()
            except Exception:  # keep polling: a crashed poller would silently stop all processing
                log.exception("poller %s failed; polling again", self.function_name)
                self.stopping.wait(1.0)

    def poll_once(self) -> int:
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=self.wait_s,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        event = sqs_event(messages, self.queue_arn, self.region)
        try:
            response = self.handler(event, LambdaContext(self.function_name))
        except Exception:
            log.exception("%s raised; %d message(s) will be retried", self.function_name, len(messages))
            failed = {m["MessageId"] for m in messages}
        else:
            failed = {f["itemIdentifier"] for f in (response or {}).get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done[start : start + 10])
                ],
            )
        if failed:
            # Lambda makes failed messages visible again after the visibility timeout; locally
            # we shorten that so a retry comes within seconds, not 12 minutes.
            for m in messages:
                if m["MessageId"] in failed:
                    self.sqs.change_message_visibility(
                        QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=2
                    )
        return len(messages)


def scheduled_event(function_name: str, region: str) -> dict:
    """The EventBridge event a `@app.schedule` Lambda receives."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "000000000000",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": region,
        "resources": [f"arn:aws:events:{region}:000000000000:rule/{function_name}"],
        "detail": {},
    }


class Schedule(threading.Thread):
    """Invoke a `@app.schedule` handler every `interval_s` seconds, as EventBridge would."""

    def __init__(self, handler, *, name: str, interval_s: float, region: str = "us-east-1"):
        super().__init__(name=f"schedule-{name}", daemon=True)
        self.handler, self.function_name, self.interval_s, self.region = handler, name, interval_s, region
        self.stopping = threading.Event()

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        while not self.stopping.wait(self.interval_s):
            try:
                self.handler(scheduled_event(self.function_name, self.region), LambdaContext(self.function_name))
            except Exception:  # the next run may succeed (the database back, …): keep the schedule
                log.exception("scheduled %s failed; it runs again in %s s", self.function_name, self.interval_s)
