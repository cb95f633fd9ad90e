"""The model registry and registered models run through the API by the real workers over SQS.

The ONNX models are built here with onnx.helper and fixed weights, so every confidence is known;
the scikit-learn model is trained here on scikit-learn's digits.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import math
import threading

import numpy as np
import onnx
import pytest
import requests
from onnx import TensorProto, helper, numpy_helper
from onnx_nets import detector_net
from PIL import Image

JSON = {"Content-Type": "application/json"}
SPEC = {"size": [16, 16], "channel_order": "RGB", "layout": "NCHW", "scale": 1 / 255}
RED, BLUE = (255, 0, 0), (0, 0, 255)


def post(client, path, body):
    return client.http.post(path, body=json.dumps(body), headers=JSON)


def colour_net(gain: float) -> bytes:
    """GlobalAveragePool → Flatten → Gemm: logits = gain · (mean red, mean blue) of the 0..1 pixels."""
    weights = np.array([[gain, 0.0, 0.0], [0.0, 0.0, gain]], np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("Gemm", ["flat", "W", "b"], ["logits"], transB=1),
        ],
        "colour",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2])],
        [numpy_helper.from_array(weights, "W"), numpy_helper.from_array(np.zeros(2, np.float32), "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def png(colour, size=(60, 40)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


def softmax(*logits: float) -> list[float]:
    exp = [math.exp(v) for v in logits]
    return [v / sum(exp) for v in exp]


BOUNDARY = "pixelakemodelboundary"


def multipart_model(metadata: dict, data: bytes):
    """A multipart/form-data body with a `metadata` JSON part and a `file` part."""
    body = (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="metadata"\r\n'
            f"Content-Type: application/json\r\n\r\n{json.dumps(metadata)}\r\n"
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="model.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    return body, {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def register_file(client, metadata: dict, data: bytes):
    body, headers = multipart_model(metadata, data)
    return client.http.post("/api/models", body=body, headers=headers)


def colours(name="colours", **extra) -> dict:
    return {
        "name": name,
        "framework": "onnx",
        "task": "classify",
        "input_spec": SPEC,
        "labels": ["red", "blue"],
        **extra,
    }


@pytest.fixture
def file_server():
    """An HTTP server on loopback serving `files[path] = bytes` (404 for anything else)."""
    files: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.startswith("/redirect/"):  # /redirect/<url>: a 302 to <url>
                self.send_response(302)
                self.send_header("Location", self.path.removeprefix("/redirect/"))
                self.end_headers()
                return
            data = files.get(self.path)
            if data is None:
                self.send_error(404)
                return
            self.send_response(200)
            if not self.path.startswith("/unsized/"):  # else the body ends when the connection closes
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield files, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def model_cache(tmp_path):
    """Workers cache artifacts in this test's own directory."""
    import os

    from chalicelib.config import reset_settings

    saved = os.environ.get("PIXELAKE_TMP")
    os.environ["PIXELAKE_TMP"] = str(tmp_path)
    reset_settings()
    yield tmp_path
    if saved is None:
        os.environ.pop("PIXELAKE_TMP", None)
    else:
        os.environ["PIXELAKE_TMP"] = saved
    reset_settings()


def analyze(client, image_id, model, **params):
    return post(client, "/api/analyze?wait=20", {"image_id": image_id, "model": model, "params": params})


def test_register_by_upload_and_url_version_activate_archive_and_classify(
    client, ready_image, file_server, model_cache
):
    files, base_url = file_server
    first, second = colour_net(2.0), colour_net(4.0)
    response = register_file(client, colours(description="red or blue", metrics={"accuracy": 1.0}), first)
    assert response.status_code == 201, response.body
    v1 = response.json_body
    assert response.headers["Location"] == "/api/models/colours"
    assert (v1["name"], v1["version"], v1["status"]) == ("colours", 1, "active")
    assert (v1["framework"], v1["task"]) == ("onnx", "classify")
    assert v1["sha256"] == hashlib.sha256(first).hexdigest() and v1["size_bytes"] == len(first)
    assert v1["labels"] == ["red", "blue"] and v1["metrics"] == {"accuracy": 1.0}
    assert v1["input_spec"]["size"] == [16, 16] and v1["input_spec"]["mean"] == [0.0, 0.0, 0.0]
    assert {"id", "created_at"} <= set(v1)

    files["/models/colours-v2.onnx"] = second
    v2 = post(client, "/api/models", {**colours(), "url": f"{base_url}/models/colours-v2.onnx"})
    assert v2.status_code == 201, v2.body
    assert (v2.json_body["version"], v2.json_body["status"]) == (2, "active")
    assert v2.json_body["sha256"] == hashlib.sha256(second).hexdigest()
    versions = client.http.get("/api/models/colours").json_body
    assert versions["active_version"] == 2
    assert [(m["version"], m["status"]) for m in versions["versions"]] == [(2, "active"), (1, "inactive")]

    red = ready_image(png(RED), "red.png")
    task = analyze(client, red["id"], "colours").json_body
    assert task["status"] == "succeeded", task
    assert (task["kind"], task["operation"], task["model"]) == ("model", "colours", {"name": "colours", "version": 2})
    assert task["params"] == {"top_k": 5, "min_confidence": 0.0}
    red_p, blue_p = softmax(4.0, 0.0)
    assert task["result"]["predictions"] == [
        {"label": "red", "confidence": pytest.approx(red_p, abs=1e-5)},
        {"label": "blue", "confidence": pytest.approx(blue_p, abs=1e-5)},
    ]
    assert task["result"]["confidence"] == pytest.approx(red_p, abs=1e-5)

    activated = post(client, "/api/models/colours/versions/1/activate", {})
    assert activated.status_code == 200 and activated.json_body["status"] == "active"
    task = analyze(client, red["id"], "colours", top_k=1).json_body
    assert task["model"] == {"name": "colours", "version": 1}
    red_p = softmax(2.0, 0.0)[0]
    assert task["result"]["predictions"] == [{"label": "red", "confidence": pytest.approx(red_p, abs=1e-5)}]
    assert [m["status"] for m in client.http.get("/api/models/colours").json_body["versions"]] == ["inactive", "active"]

    archived = post(client, "/api/models/colours/versions/1/archive", {})
    assert archived.status_code == 200 and archived.json_body["status"] == "archived"
    gone = analyze(client, red["id"], "colours")
    assert gone.status_code == 404
    assert "no active version" in gone.json_body["error"]["message"]
    assert "/api/models/colours/versions/<version>/activate" in gone.json_body["error"]["message"]
    listed = client.http.get("/api/models").json_body["items"]
    summary = [(m["name"], m["versions"], m["latest_version"], m["active_version"]) for m in listed]
    assert summary == [("colours", 2, 2, None)]

    assert post(client, "/api/models/colours/versions/9/activate", {}).status_code == 404
    assert client.http.get("/api/models/nothing-here").status_code == 404


def test_classify_through_process_uses_the_newest_active_classifier(client, ready_image, model_cache):
    blue = ready_image(png(BLUE), "blue.png")
    none_yet = post(client, "/api/process", {"image_id": blue["id"], "operation": "classify"})
    assert none_yet.status_code == 404 and "POST /api/models" in none_yet.json_body["error"]["message"]

    assert register_file(client, colours("mild"), colour_net(1.0)).status_code == 201
    assert register_file(client, colours("strong"), colour_net(3.0)).status_code == 201
    task = post(client, "/api/process?wait=20", {"image_id": blue["id"], "operation": "classify"}).json_body
    assert task["status"] == "succeeded", task
    assert task["model"] == {"name": "strong", "version": 1}
    blue_p = softmax(3.0, 0.0)[0]
    assert task["result"]["predictions"][0] == {"label": "blue", "confidence": pytest.approx(blue_p, abs=1e-5)}

    named = post(
        client,
        "/api/process?wait=20",
        {"image_id": blue["id"], "operation": "classify", "params": {"model": "mild", "min_confidence": 0.5}},
    ).json_body
    assert named["model"] == {"name": "mild", "version": 1}
    assert [p["label"] for p in named["result"]["predictions"]] == ["blue"]  # red's 0.27 is below 0.5

    bad_param = post(client, "/api/process", {"image_id": blue["id"], "operation": "classify", "params": {"top_k": 0}})
    assert bad_param.status_code == 400 and "top_k" in bad_param.json_body["error"]["message"]
    unknown = post(
        client, "/api/process", {"image_id": blue["id"], "operation": "classify", "params": {"model": "resnet50"}}
    )
    assert unknown.status_code == 404 and "POST /api/models" in unknown.json_body["error"]["message"]
    unknown = analyze(client, blue["id"], "resnet50")
    assert unknown.status_code == 404 and "POST /api/models" in unknown.json_body["error"]["message"]


def test_detect_runs_a_registered_detector_and_faces_without_one(client, ready_image, model_cache):
    rows = np.array(
        [
            [0, 1, 0.60, 0.10, 0.20, 0.50, 0.70],
            [0, 0, 0.95, 0.50, 0.00, 1.00, 0.50],
            [0, 1, 0.10, 0.00, 0.00, 1.00, 1.00],
        ]
    )
    meta = {"name": "pets", "framework": "onnx", "task": "detect", "input_spec": SPEC, "labels": ["dog", "cat"]}
    assert register_file(client, meta, detector_net(rows)).status_code == 201
    image = ready_image(png(RED, (200, 100)), "wide.png")
    task = post(
        client, "/api/process?wait=20", {"image_id": image["id"], "operation": "detect", "params": {"model": "pets"}}
    ).json_body
    assert task["status"] == "succeeded", task
    assert task["result"]["predictions"] == [
        {"label": "dog", "confidence": pytest.approx(0.95), "box": {"x": 100, "y": 0, "width": 100, "height": 50}},
        {"label": "cat", "confidence": pytest.approx(0.60), "box": {"x": 20, "y": 20, "width": 80, "height": 50}},
    ]
    faces = post(client, "/api/process?wait=20", {"image_id": image["id"], "operation": "detect"}).json_body
    assert (faces["kind"], faces["operation"], faces["model"]) == ("analysis", "faces", None)
    wrong = post(
        client, "/api/process", {"image_id": image["id"], "operation": "classify", "params": {"model": "pets"}}
    )
    assert wrong.status_code == 400 and wrong.json_body["error"]["code"] == "wrong_model_task"


def test_a_tampered_cache_is_downloaded_again_and_a_damaged_artifact_fails_the_task(client, ready_image, model_cache):
    from sqlalchemy import select

    from chalicelib import storage
    from chalicelib.db.session import session_scope
    from chalicelib.db.tables import MLModel
    from chalicelib.ml.artifacts import artifact_path

    net = colour_net(2.0)
    sha = register_file(client, colours(), net).json_body["sha256"]
    red = ready_image(png(RED), "red.png")
    expected = pytest.approx(softmax(2.0, 0.0)[0], abs=1e-5)
    assert analyze(client, red["id"], "colours").json_body["result"]["confidence"] == expected
    cached = artifact_path(sha)
    assert cached.parent.parent == model_cache and cached.read_bytes() == net

    cached.write_bytes(b"\x08" + b"tampered" * 100)
    again = analyze(client, red["id"], "colours").json_body
    assert again["status"] == "succeeded" and again["result"]["confidence"] == expected
    assert cached.read_bytes() == net  # the corrupt copy was replaced by a verified download

    with session_scope() as session:
        key = session.scalars(select(MLModel.artifact_key).where(MLModel.name == "colours")).one()
    assert key == "models/1/colours/1/model.onnx"
    storage.put(key, colour_net(9.0), "application/octet-stream")
    cached.unlink()
    failed = analyze(client, red["id"], "colours").json_body
    assert failed["status"] == "failed"
    assert "damaged" in failed["error"] and sha in failed["error"]


def test_a_scikit_learn_model_classifies_a_digit_on_the_ml_tasks_queue(client, ready_image, model_cache, monkeypatch):
    from sklearn.datasets import load_digits

    from chalicelib.ml.features import extract
    from chalicelib.ml.training import classify_image, load_model, save_model, train_and_evaluate
    from chalicelib.services import model_runs as model_runner

    def digit_png(image: np.ndarray) -> bytes:  # 8×8 digit (0..16) → 32×32 grayscale PNG, same 4×4 block means
        out = io.BytesIO()
        digit = Image.fromarray(np.round(image * 255.0 / 16.0).astype(np.uint8), "L")
        digit.resize((32, 32), Image.NEAREST).save(out, "PNG")
        return out.getvalue()

    digits = load_digits()
    pngs = [digit_png(image) for image in digits.images[:601]]
    X = np.stack([extract(data, "pixels", {"size": 8}) for data in pngs[:600]])
    outcome = train_and_evaluate(X, digits.target[:600], algorithm="logistic_regression", params={}, seed=0)
    artifact = save_model(outcome.model)
    meta = {
        "name": "digits",
        "framework": "sklearn",
        "task": "classify",
        "input_spec": {"feature": "pixels", "feature_params": {"size": 8}},
        "metrics": {"accuracy": outcome.metrics["accuracy"]},
    }
    registered = register_file(client, meta, artifact)
    assert registered.status_code == 201, registered.body
    assert registered.json_body["input_spec"] == {"feature": "pixels", "feature_params": {"size": 8}}

    threads = []
    real_run = model_runner.run
    monkeypatch.setattr(
        model_runner, "run", lambda *a, **k: threads.append(threading.current_thread().name) or real_run(*a, **k)
    )
    held_out = pngs[600]
    image = ready_image(held_out, "digit.png")
    task = analyze(client, image["id"], "digits", top_k=3).json_body
    assert task["status"] == "succeeded", task
    assert threads == ["poller-run_ml_task"]
    expected = classify_image(load_model(artifact), held_out, "pixels", {"size": 8}, top=3)
    assert [p["label"] for p in task["result"]["predictions"]] == [p["label"] for p in expected]
    assert task["result"]["predictions"][0]["label"] == str(digits.target[600])
    assert task["result"]["confidence"] == pytest.approx(expected[0]["confidence"], abs=1e-6)


def test_register_from_a_presigned_upload(client, model_cache):
    net = colour_net(2.0)
    start = post(client, "/api/models/uploads", {"size": len(net), "filename": "colours.onnx"})
    assert start.status_code == 201, start.body
    upload = start.json_body
    sent = requests.post(upload["url"], data=upload["fields"], files={"file": ("colours.onnx", net)}, timeout=10)
    assert sent.status_code in (200, 204), sent.text
    model = post(client, "/api/models", {**colours(), "upload_id": upload["upload_id"], "activate": False})
    assert model.status_code == 201, model.body
    assert model.json_body["sha256"] == hashlib.sha256(net).hexdigest()
    assert model.json_body["status"] == "inactive"
    again = post(client, "/api/models", {**colours(), "upload_id": upload["upload_id"]})
    assert again.status_code == 404 and again.json_body["error"]["code"] == "upload_not_found"  # staging is consumed
    too_big = post(client, "/api/models/uploads", {"size": 10**12})
    assert too_big.status_code == 413


@pytest.mark.parametrize(
    "change, code",
    [
        ({"name": "Bad Name"}, "invalid_request"),
        ({"name": "-starts-with-a-dash"}, "invalid_request"),
        ({"name": "faces"}, "reserved_name"),
        ({"input_spec": {"size": [0, 16]}}, "invalid_input_spec"),
        ({"input_spec": {"size": [16, 16], "colours": "many"}}, "invalid_input_spec"),
        ({"framework": "tensorflow"}, "invalid_request"),
        ({"task": "generate"}, "invalid_request"),
        ({"framework": "sklearn", "input_spec": {"feature": "pixels"}, "task": "detect"}, "invalid_task"),
        ({"framework": "sklearn", "input_spec": {"feature": "sift"}}, "invalid_input_spec"),
        ({"labels": ["red", 7]}, "invalid_request"),
        ({"labels": ["red", "red"]}, "invalid_labels"),
        ({"url": "ftp://example.com/model.onnx"}, "invalid_url"),
        ({"url": "file:///etc/passwd"}, "invalid_url"),
        ({"url": "http://127.0.0.1:9/x.onnx", "upload_id": "0" * 32}, "invalid_request"),
        ({"url": None, "upload_id": "../../etc"}, "invalid_upload_id"),
    ],
)
def test_bad_registrations_are_400_and_register_nothing(client, change, code):
    body = {**colours(), "url": "http://127.0.0.1:9/never-fetched.onnx", **change}
    response = post(client, "/api/models", body)
    assert response.status_code == 400, response.body
    assert response.json_body["error"]["code"] == code
    assert response.json_body["error"]["message"]
    assert client.http.get("/api/models").json_body["items"] == []


def test_bad_files_and_downloads_are_refused(client, file_server, model_cache):
    files, base_url = file_server
    missing = post(client, "/api/models", {**colours(), "url": f"{base_url}/missing.onnx"})
    assert missing.status_code == 400 and missing.json_body["error"]["code"] == "download_failed"
    assert "404" in missing.json_body["error"]["message"]
    files["/page.html"] = b"<html>sign in to download</html>"
    html = post(client, "/api/models", {**colours(), "url": f"{base_url}/page.html"})
    assert html.status_code == 400 and html.json_body["error"]["code"] == "invalid_model"
    files["/colours.onnx"] = colour_net(1.0)
    to_ftp = post(client, "/api/models", {**colours(), "url": f"{base_url}/redirect/ftp://127.0.0.1/colours.onnx"})
    assert to_ftp.status_code == 400 and to_ftp.json_body["error"]["code"] == "invalid_url"
    redirected = f"{base_url}/redirect/{base_url}/colours.onnx"
    followed = post(client, "/api/models", {**colours("followed"), "url": redirected})
    assert followed.status_code == 201
    assert followed.json_body["sha256"] == hashlib.sha256(files["/colours.onnx"]).hexdigest()
    not_skops = register_file(
        client, {**colours(), "framework": "sklearn", "input_spec": {"feature": "pixels"}}, colour_net(1.0)
    )
    assert not_skops.status_code == 400 and not_skops.json_body["error"]["code"] == "invalid_model"
    no_file = post(client, "/api/models", colours())
    assert no_file.status_code == 400
    assert [m["name"] for m in client.http.get("/api/models").json_body["items"]] == ["followed"]


def test_a_large_download_streams_into_s3_in_parts_with_the_right_sha256(client, file_server):
    from chalicelib import storage

    files, base_url = file_server
    # Over s3transfer's 8 MB multipart threshold, without a Content-Length: hashed while streaming.
    # A real model (registration reads its graph) carrying 9 MB of unused weights.
    net = onnx.load_from_string(colour_net(1.0))
    noise = np.random.default_rng(0).standard_normal(9 * 1024 * 1024 // 4).astype(np.float32)
    net.graph.initializer.append(numpy_helper.from_array(noise, "unused"))
    data = net.SerializeToString()
    files["/unsized/large.onnx"] = data
    model = post(client, "/api/models", {**colours(), "url": f"{base_url}/unsized/large.onnx"})
    assert model.status_code == 201, model.body
    assert (model.json_body["sha256"], model.json_body["size_bytes"]) == (hashlib.sha256(data).hexdigest(), len(data))
    assert storage.get("models/1/colours/1/model.onnx") == data


def test_a_model_url_over_the_size_limit_is_413(client, file_server, model_cache, monkeypatch):
    from chalicelib.config import reset_settings

    files, base_url = file_server
    files["/big.onnx"] = files["/unsized/big.onnx"] = b"\x08" + b"\0" * 4096
    monkeypatch.setenv("PIXELAKE_MAX_MODEL_BYTES", "1024")
    reset_settings()
    try:
        response = post(client, "/api/models", {**colours(), "url": f"{base_url}/big.onnx"})
        unsized = post(client, "/api/models", {**colours(), "url": f"{base_url}/unsized/big.onnx"})
        body, headers = multipart_model(colours(), files["/big.onnx"])
        multipart = client.http.post("/api/models", body=body, headers=headers)
    finally:
        monkeypatch.delenv("PIXELAKE_MAX_MODEL_BYTES")
        reset_settings()
    assert response.status_code == 413 and response.json_body["error"]["code"] == "model_too_large"
    assert unsized.status_code == 413 and unsized.json_body["error"]["code"] == "model_too_large"
    assert multipart.status_code == 413
    assert client.http.get("/api/models").json_body["items"] == []


def test_private_model_urls_are_refused_outside_the_local_stage(monkeypatch):
    from chalicelib.config import reset_settings
    from chalicelib.errors import ApiError
    from chalicelib.services.model_sources import check_url

    monkeypatch.setenv("PIXELAKE_MODEL_URL_PRIVATE", "deny")
    reset_settings()
    try:
        for url in (
            "http://127.0.0.1:9001/2018-06-01/runtime/invocation/next",
            "http://169.254.169.254/latest",
            "http://10.0.0.5/model.onnx",
            "http://[::1]/model.onnx",
        ):
            with pytest.raises(ApiError) as refused:
                check_url(url)
            assert refused.value.code == "invalid_url"
        check_url("https://93.184.215.14/model.onnx")
    finally:
        monkeypatch.delenv("PIXELAKE_MODEL_URL_PRIVATE")
        reset_settings()


def test_concurrent_registrations_get_distinct_versions_and_one_active(db):
    from concurrent.futures import ThreadPoolExecutor

    from chalicelib.db import ml_models, users
    from chalicelib.db.session import session_scope

    with session_scope() as session:
        owner = users.ensure_local_user(session).id
    barrier = threading.Barrier(6)

    def register(i: int) -> int:
        barrier.wait()
        with session_scope() as session:
            version = ml_models.allocate_version(session, owner, "raced")
            ml_models.create(
                session,
                owner_id=owner,
                name="raced",
                version=version,
                framework="onnx",
                task="classify",
                artifact_key=f"models/{owner}/raced/{version}/model.onnx",
                sha256="0" * 64,
                size_bytes=1,
                input_spec={},
                labels=[],
                metrics={},
                description=None,
            )
            return version

    with ThreadPoolExecutor(6) as pool:
        versions = sorted(pool.map(register, range(6)))
    assert versions == [1, 2, 3, 4, 5, 6]
    with session_scope() as session:
        rows = ml_models.list_versions(session, owner, "raced")
        assert [m.status for m in rows].count("active") == 1
        assert ml_models.resolve(session, owner, "raced").version == 6
