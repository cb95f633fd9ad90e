"""CloudWatch embedded-metric-format lines: what an ingest and a task print, as CloudWatch reads them."""

from __future__ import annotations

import json

import pytest
from sample_images import jpeg_bytes

from chalicelib import metrics

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def emf(monkeypatch, capsys):
    """Metrics on, as on Lambda; returns a reader of the EMF documents printed so far."""
    monkeypatch.setenv("PIXELAKE_METRICS", "emf")

    def printed() -> list[dict]:
        out = capsys.readouterr().out
        return [doc for doc in map(_json_or_none, out.splitlines()) if isinstance(doc, dict) and "_aws" in doc]

    return printed


def _json_or_none(line: str):
    try:
        return json.loads(line)
    except ValueError:
        return None


def check_emf(doc: dict) -> None:
    """What CloudWatch requires of a document (the EMF specification): every dimension and metric
    named in a directive is a top-level member, metric values are numbers."""
    [directive] = doc["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == metrics.NAMESPACE and isinstance(doc["_aws"]["Timestamp"], int)
    for dimension_set in directive["Dimensions"]:
        assert 1 <= len(dimension_set) <= 30 and all(isinstance(doc[d], str) for d in dimension_set)
    for metric in directive["Metrics"]:
        assert isinstance(doc[metric["Name"]], int | float) and metric["Unit"] == metrics.METRICS[metric["Name"]]


def metric_docs(docs: list[dict], name: str) -> list[dict]:
    return [d for d in docs if any(m["Name"] == name for m in d["_aws"]["CloudWatchMetrics"][0]["Metrics"])]


def test_an_ingest_prints_its_duration_and_outcome_and_a_bad_file_its_reason(client, ready_image, emf):
    good = ready_image(jpeg_bytes())
    bad = ready_image(jpeg_bytes()[:5000])  # passes the upload's type check, fails the decode
    assert (good["status"], bad["status"]) == ("ready", "failed")
    docs = metric_docs(emf(), "IngestDuration")
    for doc in docs:
        check_emf(doc)
    by_image = {d.get("image_id"): d for d in docs}
    assert (by_image[good["id"]]["Outcome"], by_image[good["id"]]["Reason"]) == ("ready", "none")
    assert (by_image[bad["id"]]["Outcome"], by_image[bad["id"]]["Reason"]) == ("failed", "rejected")
    assert by_image[good["id"]]["IngestDuration"] > 0 and by_image[good["id"]]["Ingests"] == 1
    assert ["Stage"] in by_image[good["id"]]["_aws"]["CloudWatchMetrics"][0]["Dimensions"]  # the alarms' series


def test_a_task_prints_its_duration_by_operation_and_the_queue_wait(client, ready_image, emf):
    image = ready_image(jpeg_bytes())
    emf()  # the ingest's lines
    response = client.http.post(
        "/api/process?wait=20",
        body=json.dumps({"image_id": image["id"], "operation": "resize", "params": {"width": 64}}),
        headers=JSON,
    )
    assert response.status_code == 200, response.body
    docs = emf()
    [task] = [d for d in metric_docs(docs, "TaskDuration") if d.get("task_id") == response.json_body["id"]]
    check_emf(task)
    assert (task["Operation"], task["Outcome"], task["Tasks"]) == ("resize", "succeeded", 1)
    waits = [d for d in metric_docs(docs, "QueueWait") if d.get("task_id") is None]
    assert waits and all(d["Queue"].endswith("tasks") and d["QueueWait"] >= 0 for d in waits)
    for doc in waits:
        check_emf(doc)


def test_nothing_is_printed_off_lambda_unless_asked(monkeypatch, capsys):
    monkeypatch.delenv("PIXELAKE_METRICS", raising=False)
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    metrics.ingest_finished("ready", "none", 12.5)
    assert capsys.readouterr().out == ""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "pixelake-dev-ingest_upload")
    metrics.ingest_finished("ready", "none", 12.5)
    doc = json.loads(capsys.readouterr().out)
    check_emf(doc)
    assert doc["IngestDuration"] == 12.5
