"""Ingest: real S3 → SQS notifications from moto's server, handled through chalice.test.Client."""

import io
import json

import pytest
from PIL import Image
from sample_images import jpeg_bytes, multipart, png_claiming_size

from chalicelib import storage
from chalicelib.config import get_settings
from chalicelib.db.session import session_scope
from chalicelib.db.tables import Image as ImageRow


@pytest.fixture
def local_user(db):
    from chalicelib.db.users import ensure_local_user

    with session_scope() as session:
        return ensure_local_user(session).id


@pytest.fixture
def deliver(client, drain_queue):
    """Put an object under uploads/ and hand the notifications S3 sent to the ingest function."""
    drain_queue(get_settings().uploads_queue, expect=100, wait_s=1)  # anything left by earlier tests

    def put_and_ingest(data: bytes, *, user_id: int, name: str = "photo.jpg", times: int = 1):
        key = f"uploads/{user_id}/{name}"
        storage.put(key, data, "application/octet-stream")
        messages = [m for m in drain_queue(get_settings().uploads_queue, expect=1) if "ObjectCreated" in m["Body"]]
        assert messages, "S3 sent no notification"
        bodies = [m["Body"] for m in messages] * times
        event = client.events.generate_sqs_event(message_bodies=bodies, queue_name=get_settings().uploads_queue)
        response = client.lambda_.invoke("ingest_upload", event)
        return key, response.payload

    return put_and_ingest


def image_by_key(key: str) -> ImageRow:
    with session_scope() as session:
        return session.query(ImageRow).filter_by(key=key).one()


def test_a_photo_becomes_ready_with_thumbnails_under_thumbnails(deliver, local_user):
    key, payload = deliver(jpeg_bytes((1600, 1200)), user_id=local_user, name="my photo+1.jpg")
    assert payload == {"batchItemFailures": []}
    image = image_by_key(key)  # the key had a space and a plus: URL-decoded correctly
    assert (image.status, image.format, image.width, image.height) == ("ready", "jpeg", 1600, 1200)
    assert image.sha256 and image.phash is not None and image.metadata_["mode"] == "RGB"
    assert sorted(t["size"] for t in image.thumbnails) == [256, 1024]
    for thumb in image.thumbnails:
        assert thumb["key"].startswith("thumbnails/")
        picture = Image.open(io.BytesIO(storage.get(thumb["key"])))
        assert max(picture.size) == thumb["size"] and picture.format == "JPEG"


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda: jpeg_bytes()[:5000], "damaged or truncated"),
        (lambda: b"%PDF-1.4 definitely a document", "a PDF document"),
        (lambda: b"plain text in a .jpg", "not a supported image"),
        (lambda: png_claiming_size(50_000, 50_000), "more than the limit"),
    ],
)
def test_bad_files_end_failed_with_a_reason(deliver, local_user, make, reason):
    key, payload = deliver(make(), user_id=local_user)
    assert payload == {"batchItemFailures": []}  # consumed: retrying cannot fix the file
    image = image_by_key(key)
    assert image.status == "failed"
    assert reason in image.error
    assert image.thumbnails == []


def test_duplicate_delivery_yields_one_image_and_one_set_of_thumbnails(deliver, local_user):
    key, payload = deliver(jpeg_bytes(), user_id=local_user, times=3)
    assert payload == {"batchItemFailures": []}
    with session_scope() as session:
        assert session.query(ImageRow).filter_by(key=key).count() == 1
        image_id = session.query(ImageRow).filter_by(key=key).one().id
    listed = storage.s3_client().list_objects_v2(Bucket=get_settings().bucket, Prefix=f"thumbnails/{image_id}/")
    assert sorted(o["Key"] for o in listed["Contents"]) == [
        f"thumbnails/{image_id}/1024.jpeg",
        f"thumbnails/{image_id}/256.jpeg",
    ]


def test_one_bad_file_does_not_fail_the_others_in_a_batch(client, drain_queue, local_user):
    queue = get_settings().uploads_queue
    drain_queue(queue, expect=100, wait_s=1)
    storage.put(f"uploads/{local_user}/good.jpg", jpeg_bytes(), "image/jpeg")
    storage.put(f"uploads/{local_user}/bad.jpg", b"not an image", "image/jpeg")
    bodies = [m["Body"] for m in drain_queue(queue, expect=2)]
    response = client.lambda_.invoke(
        "ingest_upload", client.events.generate_sqs_event(message_bodies=bodies, queue_name=queue)
    )
    assert response.payload == {"batchItemFailures": []}
    assert image_by_key(f"uploads/{local_user}/good.jpg").status == "ready"
    assert image_by_key(f"uploads/{local_user}/bad.jpg").status == "failed"


def test_database_down_leaves_the_message_for_retry_and_nothing_is_lost(client, drain_queue, local_user, monkeypatch):
    from chalicelib.config import reset_settings
    from chalicelib.db.session import reset_engine

    queue = get_settings().uploads_queue
    drain_queue(queue, expect=100, wait_s=1)
    key = f"uploads/{local_user}/while-db-down.jpg"
    storage.put(key, jpeg_bytes(), "image/jpeg")
    bodies = [m["Body"] for m in drain_queue(queue, expect=1)]
    event = client.events.generate_sqs_event(message_bodies=bodies, queue_name=queue)
    message_id = event["Records"][0]["messageId"]

    monkeypatch.setenv("DATABASE_URL", "postgresql+pg8000://postgres@127.0.0.1:1/unreachable")
    reset_settings()
    reset_engine()
    down = client.lambda_.invoke("ingest_upload", event)
    assert down.payload == {"batchItemFailures": [{"itemIdentifier": message_id}]}

    monkeypatch.undo()
    reset_settings()
    reset_engine()
    retried = client.lambda_.invoke("ingest_upload", event)  # SQS redelivers the same message
    assert retried.payload == {"batchItemFailures": []}
    assert image_by_key(key).status == "ready"


def test_an_upload_through_the_api_keeps_its_row_and_filename(client, drain_queue):
    queue = get_settings().uploads_queue
    drain_queue(queue, expect=100, wait_s=1)
    body, headers = multipart("file", "beach.jpg", jpeg_bytes())
    image_id = client.http.post("/api/upload", body=body, headers=headers).json_body["id"]
    bodies = [m["Body"] for m in drain_queue(queue, expect=1)]
    client.lambda_.invoke("ingest_upload", client.events.generate_sqs_event(message_bodies=bodies, queue_name=queue))
    image = client.http.get(f"/api/images/{image_id}").json_body
    assert image["status"] == "ready" and image["filename"] == "beach.jpg"
    assert len(image["thumbnails"]) == 2
    import requests

    thumb = requests.get(image["thumbnails"][1]["url"], timeout=10)
    assert thumb.status_code == 200 and Image.open(io.BytesIO(thumb.content)).width == image["thumbnails"][1]["width"]


def test_the_s3_test_event_and_objects_outside_uploads_are_ignored(client):
    test_event = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "pixelake-local"})
    response = client.lambda_.invoke("ingest_upload", client.events.generate_sqs_event(message_bodies=[test_event]))
    assert response.payload == {"batchItemFailures": []}


def test_an_ingest_logs_a_line_with_its_image_id_and_user_id(deliver, local_user, caplog):
    # No caplog.set_level: the app's own logging setup must let pixelake's info lines through.
    key, payload = deliver(jpeg_bytes(), user_id=local_user, name="logged.jpg")
    assert payload == {"batchItemFailures": []}
    image = image_by_key(key)
    lines = [r for r in caplog.records if r.name == "pixelake.ingest" and key in r.getMessage()]
    assert lines, [r.getMessage() for r in caplog.records]
    assert (lines[-1].levelname, lines[-1].image_id, lines[-1].user_id) == ("INFO", image.id, local_user)
    assert lines[-1].message_id  # the SQS record it came from
