"""Pixelake's metrics as CloudWatch embedded metric format (EMF) lines.

A metric is one JSON line printed to stdout: on Lambda, CloudWatch Logs extracts it into the
`Pixelake` namespace with no API call and no latency on the request (the format:
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html).
Lines are printed on Lambda (AWS_LAMBDA_FUNCTION_NAME is set) or when PIXELAKE_METRICS=emf;
elsewhere (tests, the local stack) nothing is printed.

Every metric has the dimension `Stage`; the names, units and the other dimensions are the
constants below, and the alarms and the dashboard in infra/aws/app-merge.yaml name them.
The context ids of the line (image id, task id…) are written as properties, not dimensions,
so a metric line can be found from a log line and back without multiplying the metrics.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from typing import Any

NAMESPACE = "Pixelake"

# name: unit — every metric Pixelake emits.
METRICS = {
    "IngestDuration": "Milliseconds",  # an uploaded object → ready/failed, by Outcome and Reason
    "Ingests": "Count",
    "TaskDuration": "Milliseconds",  # one task run, by Operation and Outcome
    "Tasks": "Count",
    "QueueWait": "Milliseconds",  # SQS SentTimestamp → the handler starts on the record, by Queue
    "ModelInference": "Milliseconds",  # one registered model's forward pass, by Framework
    "JobProgress": "Percent",  # a batch's or a training job's progress, by JobKind
}


def enabled(environ: Mapping[str, str] | None = None) -> bool:
    environ = os.environ if environ is None else environ
    return bool(environ.get("AWS_LAMBDA_FUNCTION_NAME")) or environ.get("PIXELAKE_METRICS", "").lower() == "emf"


def emf_line(values: Mapping[str, float], dimensions: Mapping[str, str], properties: Mapping[str, Any]) -> str:
    """One EMF document: `values` (metric name → value) under the dimension set Stage + `dimensions`,
    and again under Stage alone (the series the alarms and the dashboard read)."""
    stage = os.environ.get("PIXELAKE_STAGE", "local")
    names = ["Stage", *dimensions]
    dimension_sets = [names] if len(names) == 1 else [["Stage"], names]
    document: dict[str, Any] = {
        **properties,
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": dimension_sets,
                    "Metrics": [{"Name": name, "Unit": METRICS[name]} for name in values],
                }
            ],
        },
        "Stage": stage,
        **{k: str(v) for k, v in dimensions.items()},
        **{k: round(float(v), 3) for k, v in values.items()},
    }
    return json.dumps(document, default=str, separators=(",", ":"))


def emit(values: Mapping[str, float], dimensions: Mapping[str, str] | None = None, **properties: Any) -> None:
    """Print one EMF line (where enabled) with the current log context's ids as properties."""
    if not enabled():
        return
    from chalicelib.logs import current_context

    line = emf_line(values, dimensions or {}, {**current_context(), **properties})
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def ingest_finished(outcome: str, reason: str, duration_ms: float) -> None:
    emit({"IngestDuration": duration_ms, "Ingests": 1}, {"Outcome": outcome, "Reason": reason})


def task_finished(operation: str, outcome: str, duration_ms: float) -> None:
    emit({"TaskDuration": duration_ms, "Tasks": 1}, {"Operation": operation, "Outcome": outcome})


def queue_wait(queue: str, wait_ms: float) -> None:
    emit({"QueueWait": max(wait_ms, 0.0)}, {"Queue": queue})


def model_inference(framework: str, duration_ms: float) -> None:
    emit({"ModelInference": duration_ms}, {"Framework": framework})


def job_progress(kind: str, percent: float, **ids: Any) -> None:
    """A batch's or a training job's progress (kind "batch" or "training")."""
    emit({"JobProgress": percent}, {"JobKind": kind}, **ids)
