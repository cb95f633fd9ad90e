"""HEIC and AVIF are accepted on upload: sniffed by content through /api/upload, announced for a
presigned POST, and stored under a key with their own extension."""

import io
import json

import pytest
from package_samples import sdist_file
from PIL import Image
from sample_images import multipart

from chalicelib import storage


def _avif() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 40)).save(out, "AVIF", quality=60)
    return out.getvalue()


@pytest.mark.parametrize(
    "make, filename, extension",
    [
        (lambda: sdist_file("pillow-heif", "tests/images/heif_other/pug.heic"), "IMG_0001.HEIC", "heic"),
        (_avif, "photo.avif", "avif"),
    ],
)
def test_heic_and_avif_uploads_are_accepted_by_content(client, make, filename, extension):
    data = make()
    # The browser's part type says nothing useful: the content decides.
    body, headers = multipart("file", filename, data, content_type="application/octet-stream")
    response = client.http.post("/api/upload", body=body, headers=headers)
    assert response.status_code == 202, response.body
    from chalicelib.db.session import session_scope
    from chalicelib.db.tables import Image as ImageRow

    with session_scope() as session:
        key = session.get(ImageRow, response.json_body["id"]).key
    assert key.endswith(f".{extension}") and storage.get(key) == data


@pytest.mark.parametrize("content_type", ["image/heic", "image/heif", "image/avif"])
def test_presigned_uploads_accept_the_phone_formats(client, content_type):
    body = {"filename": "photo", "content_type": content_type, "size": 1000}
    response = client.http.post("/api/uploads", body=json.dumps(body), headers={"Content-Type": "application/json"})
    assert response.status_code == 201, response.body


def test_an_mp4_is_still_refused_with_the_accepted_list(client):
    video = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 64
    body, headers = multipart("file", "clip.mp4", video)
    response = client.http.post("/api/upload", body=body, headers=headers)
    assert response.status_code == 415
    assert "HEIC/HEIF, AVIF" in response.json_body["error"]["message"]
