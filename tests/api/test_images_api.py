"""The images API through chalice.test.Client, on real PostgreSQL and S3/SQS over HTTP."""

import json

import pytest
import requests
from sample_images import jpeg_bytes, multipart

from chalicelib import storage
from chalicelib.config import get_settings


def test_index_lists_endpoints(client):
    response = client.http.get("/")
    assert response.status_code == 200
    paths = {(e["method"], e["path"]) for e in response.json_body["endpoints"]}
    assert {("POST", "/api/upload"), ("POST", "/api/uploads"), ("GET", "/api/images"), ("GET", "/health")} <= paths


def test_health_reports_each_component(client):
    response = client.http.get("/health")
    assert response.status_code == 200
    assert response.json_body["components"]["database"]["status"] == "up"
    assert response.json_body["components"]["storage"]["status"] == "up"


def test_health_is_503_when_the_database_is_down(client, monkeypatch):
    from chalicelib.config import reset_settings
    from chalicelib.db.session import reset_engine

    monkeypatch.setenv("DATABASE_URL", "postgresql+pg8000://postgres@127.0.0.1:1/nothing")
    reset_settings()
    reset_engine()
    try:
        response = client.http.get("/health")
        assert response.status_code == 503
        assert response.json_body["components"]["database"]["status"] == "down"
        assert response.json_body["components"]["storage"]["status"] == "up"
    finally:
        monkeypatch.undo()
        reset_settings()
        reset_engine()


def test_upload_stores_the_object_under_uploads_and_answers_202(client):
    data = jpeg_bytes()
    body, headers = multipart("file", "../../etc/holiday<b>.jpg", data)
    response = client.http.post("/api/upload", body=body, headers=headers)
    assert response.status_code == 202, response.body
    image = response.json_body
    assert image["status"] == "pending" and image["id"] == 1
    assert image["filename"] == "holidayb.jpg"
    assert response.headers["Location"] == "/api/images/1"
    from chalicelib.db.session import session_scope
    from chalicelib.db.tables import Image

    with session_scope() as session:
        key = session.get(Image, 1).key
    assert key.startswith("uploads/") and "holiday" not in key
    assert storage.get(key) == data


@pytest.mark.parametrize(
    "payload, status, code",
    [
        (b"<html><body>hello</body></html>", 415, "unsupported_media_type"),
        (b'<svg xmlns="http://www.w3.org/2000/svg"/>', 415, "unsupported_media_type"),
    ],
)
def test_upload_rejects_what_is_not_an_image_by_content(client, payload, status, code):
    body, headers = multipart("file", "photo.jpg", payload)
    response = client.http.post("/api/upload", body=body, headers=headers)
    assert response.status_code == status
    assert response.json_body["error"]["code"] == code


def test_upload_without_a_file_field_is_400(client):
    body, headers = multipart("picture", "a.jpg", jpeg_bytes())
    response = client.http.post("/api/upload", body=body, headers=headers)
    assert response.status_code == 400
    assert "file" in response.json_body["error"]["message"]


def test_upload_with_a_malformed_multipart_body_is_400(client):
    response = client.http.post("/api/upload", body=b"garbage", headers={"Content-Type": "multipart/form-data"})
    assert response.status_code == 400
    assert response.json_body["error"]["code"] == "invalid_multipart"


def test_presigned_post_uploads_straight_to_s3(client):
    data = jpeg_bytes()
    response = client.http.post(
        "/api/uploads",
        body=json.dumps({"filename": "cat.jpg", "content_type": "image/jpeg", "size": len(data)}),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.body
    post = response.json_body
    assert post["image_id"] == 1 and post["fields"]["key"].startswith("uploads/")
    policy = json.loads(__import__("base64").b64decode(post["fields"]["policy"]))
    assert ["content-length-range", 1, len(data)] in policy["conditions"]
    upload = requests.post(
        post["url"], data=post["fields"], files={"file": ("cat.jpg", data, "image/jpeg")}, timeout=10
    )
    assert upload.status_code in (200, 204), upload.text
    assert storage.get(post["fields"]["key"]) == data
    image = client.http.get("/api/images/1").json_body
    assert image["status"] == "pending" and image["filename"] == "cat.jpg"


@pytest.mark.parametrize(
    "body, status",
    [
        ({"filename": "a.svg", "content_type": "image/svg+xml", "size": 10}, 415),
        ({"filename": "a.jpg", "content_type": "image/jpeg", "size": 10**12}, 413),
        ({"filename": "a.jpg", "content_type": "image/jpeg", "size": "big"}, 400),
        ({"filename": "a.jpg", "content_type": "image/jpeg", "size": 10, "bucket": "other"}, 400),
        ({"filename": "a.jpg", "content_type": "image/jpeg"}, 400),
    ],
)
def test_presign_validates_the_request(client, body, status):
    response = client.http.post("/api/uploads", body=json.dumps(body), headers={"Content-Type": "application/json"})
    assert response.status_code == status
    assert response.json_body["error"]["message"]


def test_presign_with_invalid_json_is_400(client):
    response = client.http.post("/api/uploads", body=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json_body["error"]["code"] == "invalid_json"


def test_images_are_listed_newest_first_with_a_cursor(client):
    for i in range(5):
        body, headers = multipart("file", f"{i}.jpg", jpeg_bytes((64, 48)))
        assert client.http.post("/api/upload", body=body, headers=headers).status_code == 202
    first = client.http.get("/api/images?limit=2").json_body
    assert [i["id"] for i in first["items"]] == [5, 4]
    second = client.http.get(f"/api/images?limit=2&cursor={first['next_cursor']}").json_body
    assert [i["id"] for i in second["items"]] == [3, 2]
    last = client.http.get(f"/api/images?limit=2&cursor={second['next_cursor']}").json_body
    assert [i["id"] for i in last["items"]] == [1] and last["next_cursor"] is None


@pytest.mark.parametrize("query", ["limit=0", "limit=1000", "limit=abc", "cursor=x", "status=weird", "colour=red"])
def test_bad_list_queries_are_400(client, query):
    response = client.http.get(f"/api/images?{query}")
    assert response.status_code == 400
    assert response.json_body["error"]["code"] == "invalid_query"


def test_unknown_and_malformed_image_ids(client):
    assert client.http.get("/api/images/999").status_code == 404
    response = client.http.get("/api/images/abc")
    assert response.status_code == 400 and response.json_body["error"]["code"] == "invalid_id"


def test_settings_point_at_the_test_bucket(stack_env):
    assert get_settings().bucket == "pixelake-local"
