"""On a deployed stage, API Gateway serves the routes under the stage's path (https://…/api/api/…):
the URLs the API hands out must include it. Requests here go through chalice.test.Client with
events shaped as API Gateway sends them on a stage named `api`."""

from __future__ import annotations

import pytest
from chalice.local import LambdaEventConverter
from sample_images import jpeg_bytes, multipart

STAGE = "api"
HOST = "abc123.execute-api.eu-west-1.amazonaws.com"


@pytest.fixture
def on_stage(client, monkeypatch):
    """Every request as API Gateway delivers it on the stage: the event's `path` is the route's,
    the request context's `path` has the stage in front; the Host is the API's domain."""
    local_event = LambdaEventConverter.create_lambda_event

    def stage_event(self, method, path, headers, body=None):
        event = local_event(self, method, path, {**headers, "Host": HOST, "X-Forwarded-Proto": "https"}, body)
        route_path = path.split("?")[0]
        event["path"] = route_path
        event["requestContext"].update(path=f"/{STAGE}{route_path}", stage=STAGE, domainName=HOST)
        return event

    monkeypatch.setattr(LambdaEventConverter, "create_lambda_event", stage_event)
    return client


def test_location_of_an_upload_names_the_image_under_the_stage(on_stage):
    body, headers = multipart("file", "photo.jpg", jpeg_bytes())
    response = on_stage.http.post("/api/upload", body=body, headers=headers)
    assert response.status_code == 202, response.body
    assert response.headers["Location"] == f"/{STAGE}/api/images/{response.json_body['id']}"


def test_openapi_servers_is_the_url_the_client_reached(on_stage, client):
    document = on_stage.http.get("/openapi.json").json_body
    assert document["servers"] == [{"url": f"https://{HOST}/{STAGE}"}]
    assert "/api/images" in document["paths"]  # paths stay relative to the server


def test_locally_nothing_is_added(client):
    body, headers = multipart("file", "photo.jpg", jpeg_bytes())
    response = client.http.post("/api/upload", body=body, headers=headers)
    assert response.headers["Location"] == f"/api/images/{response.json_body['id']}"
    assert client.http.get("/openapi.json").json_body["servers"] == [{"url": "http://localhost"}]
