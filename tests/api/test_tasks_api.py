"""POST /api/process and /api/analyze through the API, run by the real worker over SQS."""

import io
import json
from datetime import UTC

import numpy as np
import pytest
import requests
from PIL import Image
from sample_images import ASTRONAUT_FACE, box_iou, jpeg_bytes

JSON = {"Content-Type": "application/json"}


def post(client, path, body):
    return client.http.post(path, body=json.dumps(body), headers=JSON)


def astronaut_jpeg() -> bytes:
    from skimage import data

    out = io.BytesIO()
    Image.fromarray(data.astronaut()).save(out, "JPEG", quality=92)
    return out.getvalue()


def test_resize_with_wait_answers_200_with_the_result(client, ready_image):
    image = ready_image(jpeg_bytes())
    response = post(
        client, "/api/process?wait=20", {"image_id": image["id"], "operation": "resize", "params": {"width": 320}}
    )
    assert response.status_code == 200, response.body
    task = response.json_body
    assert task["status"] == "succeeded" and task["error"] is None
    assert (task["result"]["width"], task["result"]["height"], task["result"]["format"]) == (320, 214, "jpeg")
    assert task["duration_ms"] >= 0 and task["started_at"] and task["finished_at"]
    picture = Image.open(io.BytesIO(requests.get(task["result"]["url"], timeout=10).content))
    assert picture.size == (320, 214)
    assert task["result"]["size_bytes"] > 0


def test_process_without_wait_is_202_with_a_location_to_poll(client, ready_image):
    image = ready_image(jpeg_bytes())
    response = post(client, "/api/process", {"image_id": image["id"], "operation": "grayscale"})
    assert response.status_code == 202
    assert response.json_body["status"] in ("pending", "running", "succeeded")
    location = response.headers["Location"]
    task = client.http.get(f"{location}?wait=20").json_body
    assert task["status"] == "succeeded"
    picture = Image.open(io.BytesIO(requests.get(task["result"]["url"], timeout=10).content))
    assert picture.mode == "L"
    listed = client.http.get(f"/api/images/{image['id']}/tasks").json_body["items"]
    assert task["id"] in [t["id"] for t in listed]


def test_pipeline_runs_steps_in_one_pass(client, ready_image):
    image = ready_image(jpeg_bytes())
    steps = [
        {"operation": "resize", "params": {"width": 200}},
        {"operation": "grayscale"},
        {"operation": "convert", "params": {"format": "png"}},
    ]
    task = post(
        client, "/api/process?wait=20", {"image_id": image["id"], "operation": "pipeline", "params": {"steps": steps}}
    ).json_body
    assert task["status"] == "succeeded", task
    assert (task["result"]["format"], task["result"]["width"]) == ("png", 200)


@pytest.mark.parametrize(
    "body, code",
    [
        ({"operation": "sparkle"}, "unknown_operation"),
        ({"operation": "resize", "params": {"width": -5}}, "invalid_parameter"),
        ({"operation": "resize", "params": {"width": 100, "colour": "red"}}, "invalid_parameter"),
        ({"operation": "blur", "params": {"sigma": "lots"}}, "invalid_parameter"),
        ({"operation": "pipeline", "params": {"steps": [{"operation": "nope"}]}}, None),
    ],
)
def test_bad_operations_and_parameters_are_400_and_say_what_is_allowed(client, ready_image, body, code):
    image = ready_image(jpeg_bytes((64, 48)))
    response = post(client, "/api/process", {"image_id": image["id"], **body})
    assert response.status_code == 400
    error = response.json_body["error"]
    assert error["message"]
    if code:
        assert error["code"] == code
    if code == "unknown_operation":
        assert "resize" in error["allowed"]


def test_process_on_a_missing_image_is_404_and_on_a_failed_one_409(client, ready_image):
    assert post(client, "/api/process", {"image_id": 999, "operation": "flip"}).status_code == 404
    failed = ready_image(jpeg_bytes()[:3000])  # passes the magic-bytes check, fails decoding
    assert failed["status"] == "failed"
    response = post(client, "/api/process", {"image_id": failed["id"], "operation": "flip"})
    assert response.status_code == 409 and response.json_body["error"]["code"] == "image_not_ready"


def test_a_task_that_cannot_run_fails_with_a_reason_and_others_still_run(client, ready_image):
    image = ready_image(jpeg_bytes((64, 48)))
    bad = post(
        client,
        "/api/process",
        {"image_id": image["id"], "operation": "crop", "params": {"x": 500, "y": 500, "width": 10, "height": 10}},
    ).json_body
    good = post(client, "/api/process", {"image_id": image["id"], "operation": "flop"}).json_body
    bad = client.http.get(f"/api/tasks/{bad['id']}?wait=20").json_body
    good = client.http.get(f"/api/tasks/{good['id']}?wait=20").json_body
    assert bad["status"] == "failed" and bad["error"] and bad["result"] is None
    assert good["status"] == "succeeded"


def test_redelivered_task_message_runs_once(client, ready_image, chalice_app):
    from chalicelib.db.session import session_scope
    from chalicelib.db.tables import Result

    image = ready_image(jpeg_bytes((64, 48)))
    task = post(client, "/api/process?wait=20", {"image_id": image["id"], "operation": "invert"}).json_body
    assert task["status"] == "succeeded"
    event = client.events.generate_sqs_event(message_bodies=[json.dumps({"task_id": task["id"]})] * 2)
    assert client.lambda_.invoke("run_task", event).payload == {"batchItemFailures": []}
    with session_scope() as session:
        assert session.query(Result).filter_by(task_id=task["id"]).count() == 1
    assert client.http.get(f"/api/tasks/{task['id']}").json_body["attempts"] == 1


def test_ingest_ran_the_default_analyzers(client, ready_image):
    image = ready_image(astronaut_jpeg())
    details = client.http.get(f"/api/images/{image['id']}").json_body
    assert set(details["analyses"]) == {"properties", "faces", "phash"}
    face = details["analyses"]["faces"]["predictions"][0]
    assert face["label"] == "face" and face["confidence"] > 0.9
    assert box_iou(face["box"], ASTRONAUT_FACE) > 0.6
    assert details["analyses"]["properties"]["dominant_colors"]


def test_analyze_faces_returns_predictions_with_confidences(client, ready_image):
    image = ready_image(astronaut_jpeg())
    task = post(client, "/api/analyze?wait=20", {"image_id": image["id"], "model": "faces"}).json_body
    assert task["status"] == "succeeded"
    predictions = task["result"]["predictions"]
    assert predictions == sorted(predictions, key=lambda p: -p["confidence"])
    assert task["result"]["confidence"] == predictions[0]["confidence"]


def test_segment_through_process_stores_a_mask(client, ready_image):
    image = ready_image(jpeg_bytes((160, 120)))
    task = post(
        client,
        "/api/process?wait=20",
        {"image_id": image["id"], "operation": "segment", "params": {"method": "kmeans", "k": 3}},
    ).json_body
    assert task["status"] == "succeeded", task
    mask = np.asarray(Image.open(io.BytesIO(requests.get(task["result"]["url"], timeout=10).content)))
    assert mask.shape == (120, 160)
    assert 2 <= len(np.unique(mask)) <= 3
    assert len(task["result"]["segments"]) == len(np.unique(mask))


def test_an_unknown_model_is_404_with_guidance(client, ready_image):
    image = ready_image(jpeg_bytes((64, 48)))
    response = post(client, "/api/analyze", {"image_id": image["id"], "model": "resnet50"})
    assert response.status_code == 404
    assert "POST /api/models" in response.json_body["error"]["message"]


def test_operations_catalogue_declares_parameters(client):
    operations = {o["name"]: o for o in client.http.get("/api/operations").json_body["operations"]}
    assert {"resize", "crop", "pipeline", "convert", "segment", "detect"} <= set(operations)
    width = operations["resize"]["params"]["properties"]["width"]
    assert width["type"] == "integer" and width["minimum"] >= 1


def test_stats_counts_images_and_tasks(client, ready_image):
    image = ready_image(jpeg_bytes((64, 48)))
    post(client, "/api/process?wait=20", {"image_id": image["id"], "operation": "flip"})
    stats = client.http.get("/api/stats").json_body
    assert stats["images"]["ready"] == 1
    flips = [t for t in stats["tasks"] if t["operation"] == "flip"]
    assert flips and flips[0]["status"] == "succeeded" and flips[0]["count"] == 1
    assert stats["per_day"][0]["tasks"] >= 4  # the flip and ingest's three analyses


def _task_row(image_id: int, **columns) -> int:
    """A task row with no queue message (no poller runs it): the test delivers its messages."""
    from chalicelib.db.session import session_scope
    from chalicelib.db.tables import Image, ProcessingTask

    with session_scope() as session:
        image = session.get(Image, image_id)
        task = ProcessingTask(
            owner_id=image.owner_id,
            image_id=image_id,
            kind="operation",
            operation="invert",
            params={},
            **{"status": "pending", **columns},
        )
        session.add(task)
        session.flush()
        return task.id


def test_a_task_whose_every_attempt_meets_a_fault_fails_on_its_last_with_the_fault(client, ready_image):
    from chalicelib import storage
    from chalicelib.db.session import session_scope
    from chalicelib.db.tables import Image

    image = ready_image(jpeg_bytes((64, 48)))
    with session_scope() as session:
        key = session.get(Image, image["id"]).key
    storage.delete(key)  # every attempt now fails to read the image: S3 answers NoSuchKey
    task_id = _task_row(image["id"])
    message = client.events.generate_sqs_event(message_bodies=[json.dumps({"task_id": task_id})])
    for attempt in range(1, 5):  # retried: SQS delivers the message again
        assert client.lambda_.invoke("run_task", message).payload["batchItemFailures"], attempt
        assert client.http.get(f"/api/tasks/{task_id}").json_body["status"] == "running"
    assert client.lambda_.invoke("run_task", message).payload == {"batchItemFailures": []}  # the 5th, the last
    task = client.http.get(f"/api/tasks/{task_id}").json_body
    assert task["status"] == "failed" and task["attempts"] == 5
    assert task["error"].startswith("gave up after 5 attempts:") and "NoSuchKey" in task["error"]


def test_a_running_task_whose_message_was_dead_lettered_is_reported_failed(client, ready_image):
    from datetime import datetime, timedelta

    from chalicelib.config import get_settings

    image = ready_image(jpeg_bytes((64, 48)))
    long_ago = datetime.now(UTC) - timedelta(seconds=get_settings().task_stall_s + 60)
    stalled = _task_row(image["id"], status="running", started_at=long_ago, attempts=5)
    live = _task_row(image["id"], status="running", started_at=datetime.now(UTC), attempts=1)
    task = client.http.get(f"/api/tasks/{stalled}").json_body
    assert task["status"] == "failed" and "set aside after 5 attempts" in task["error"]
    listed = {t["id"]: t for t in client.http.get(f"/api/images/{image['id']}/tasks").json_body["items"]}
    assert listed[stalled]["status"] == "failed" and listed[live]["status"] == "running"
