"""Every route declares its responses, and its real answers are what /openapi.json documents.

One scenario drives every route with real requests (PostgreSQL, S3 and SQS over HTTP, the queue
workers, a two-process Dask cluster; a signed-in administrator): uploads of a photo scikit-learn
ships and of a truncated copy, tasks, analyses, a dataset of scikit-learn's digits uploaded
through presigned POSTs, a training job whose skops file is registered again as a model,
batches and their export. Each answer is validated against the document with jsonschema
(formats checked); every route must have answered at least once with a 2xx.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import requests
from accounts import ADMIN_EMAIL, PASSWORD, SECRET_KEY, bearer, reconfigure
from jsonschema import Draft202012Validator, FormatChecker
from PIL import Image as PilImage
from polling import wait_for
from sample_images import jpeg_bytes, multipart

import app  # noqa: F401  (declares the routes)
from chalicelib import storage
from chalicelib.api import responses
from chalicelib.api.routing import ROUTES, RouteDoc, json_type

PROJECT_DIR = Path(__file__).resolve().parents[2]
DIGITS = (0, 1, 7)
PER_DIGIT = 12


def _key(doc: RouteDoc) -> tuple[str, str]:
    return doc.method, doc.path


ROUTE_PARAMS = [pytest.param(doc, id=f"{doc.method} {doc.path}") for doc in ROUTES]


@dataclass
class Exchange:
    method: str
    path: str  # the route's path template
    status: int
    content_type: str
    body: bytes


class RecordingApi:
    """Requests through chalice's test client, each answer kept with the route it went to."""

    def __init__(self, client):
        self.client = client
        self.headers: dict[str, str] = {}
        self.exchanges: list[Exchange] = []

    def call(self, method: str, path: str, *, query: str = "", json_body=None, body=b"", headers=None, **params):
        headers = {**self.headers, **(headers or {})}
        if json_body is not None:
            body = json.dumps(json_body)
            headers.setdefault("Content-Type", "application/json")
        url = path.format(**params) + (f"?{query}" if query else "")
        response = self.client.http.request(method, url, headers=headers, body=body)
        content_type = {k.lower(): v for k, v in response.headers.items()}.get("content-type", "")
        self.exchanges.append(Exchange(method, path, response.status_code, content_type, response.body))
        return response

    def get(self, path: str, **kwargs):
        return self.call("GET", path, **kwargs)

    def post(self, path: str, json_body=None, **kwargs):
        return self.call("POST", path, json_body=json_body, **kwargs)


def _png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    PilImage.fromarray((pixels * 255 / 16).round().astype(np.uint8), "L").save(out, "PNG")
    return out.getvalue()


def _ready(api: RecordingApi, image_id: int) -> dict:
    return wait_for(
        lambda: (
            (i := api.get("/api/images/{image_id}", image_id=image_id).json_body)["status"] in ("ready", "failed") and i
        ),
        timeout=60,
        what=f"image {image_id}",
    )


FINISHED = ("succeeded", "failed", "cancelled", "completed_with_failures")


def _finished(api: RecordingApi, path: str, **params) -> dict:
    return wait_for(
        lambda: (b := api.get(path, **params).json_body)["status"] in FINISHED and b,
        timeout=240,
        interval=0.25,
        what=path.format(**params),
    )


def _stranded_batch(owner_id: int, image_ids: list[int]) -> int:
    """A batch `running` with its tasks pending and no driver: what a scheduler restart leaves."""
    import uuid

    from chalicelib.db import jobs as job_rows
    from chalicelib.db.session import session_scope
    from chalicelib.db.tables import Batch

    with session_scope() as session:
        batch = Batch(owner_id=owner_id, request_hash=uuid.uuid4().hex, operation="flip", source={}, status="running")
        session.add(batch)
        session.flush()
        batch.total, _ = job_rows.add_batch_tasks(
            session, batch, job_rows.image_ids_in(image_ids), kind="operation", params={}
        )
        return batch.id


def _stranded_import(owner_id: int, prefix: str) -> int:
    """An import `running` with no driver: what a scheduler restart leaves."""
    from chalicelib.db import imports as import_rows
    from chalicelib.db.session import session_scope
    from chalicelib.db.transitions import import_running, on_session

    with session_scope() as session:
        import_id = import_rows.create(session, owner_id=owner_id, source={"prefix": prefix}).id
        import_running(on_session(session), import_id)
        return import_id


def _presigned_upload(ticket: dict, data: bytes, content_type: str) -> None:
    upload = requests.post(
        ticket["url"], data=ticket["fields"], files={"file": ("file", data, content_type)}, timeout=10
    )
    assert upload.status_code in (200, 204), upload.text


def _scenario(api: RecordingApi) -> None:
    from sklearn.datasets import load_digits

    # --- system and the page
    assert api.get("/").status_code == 200
    assert api.get("/", headers={"Accept": "text/html"}).status_code == 200
    assert api.get("/health").status_code == 200
    assert api.get("/openapi.json").status_code == 200
    script = api.get("/ui/{name}", name="app.js")
    assert script.status_code == 200
    assert api.get("/ui/{name}", name="app.js", headers={"If-None-Match": script.headers["ETag"]}).status_code == 304

    # --- accounts: an administrator, signed in with a token; an API key
    registered = api.post("/api/auth/register", {"email": ADMIN_EMAIL, "password": PASSWORD})
    assert registered.status_code == 201, registered.body
    token = api.post("/api/auth/token", {"email": ADMIN_EMAIL, "password": PASSWORD})
    assert token.status_code == 200, token.body
    admin = {"id": registered.json_body["id"]}
    api.headers = bearer(token.json_body["access_token"])
    assert api.get("/api/me").json_body["authenticated_by"] == "token"
    key = api.post("/api/keys", {"name": "scenario"}).json_body
    assert api.get("/api/me", headers={"Authorization": "", "X-API-Key": key["key"]}).status_code == 200
    assert api.get("/api/keys", query="limit=5").status_code == 200
    assert api.call("DELETE", "/api/keys/{key_id}", key_id=key["id"]).status_code == 204

    # --- images: a photo scikit-learn ships (twice, resized: near-duplicates) and a truncated one
    ids = []
    for data, name in ((jpeg_bytes((320, 214)), "china.jpg"), (jpeg_bytes((300, 200)), "china-small.jpg")):
        form, headers = multipart("file", name, data)
        upload = api.post("/api/upload", body=form, headers=headers)
        assert upload.status_code == 202, upload.body
        ids.append(upload.json_body["id"])
    form, headers = multipart("file", "broken.jpg", jpeg_bytes()[:2000])
    broken = api.post("/api/upload", body=form, headers=headers).json_body["id"]
    photo = jpeg_bytes((200, 150))
    ticket = api.post("/api/uploads", {"filename": "direct.jpg", "content_type": "image/jpeg", "size": len(photo)})
    assert ticket.status_code == 201, ticket.body
    _presigned_upload(ticket.json_body, photo, "image/jpeg")
    images = [_ready(api, i) for i in (*ids, broken, ticket.json_body["image_id"])]
    assert [i["status"] for i in images] == ["ready", "ready", "failed", "ready"]
    assert api.get("/api/images", query="limit=2").json_body["next_cursor"] is not None
    assert api.get("/api/images/{image_id}/similar", image_id=ids[0]).json_body["items"]
    assert api.get("/api/images/{image_id}", image_id=999_999).status_code == 404

    # --- tasks: an operation (image output), analyses, the catalogue, statistics
    resized = api.post(
        "/api/process", {"image_id": ids[0], "operation": "resize", "params": {"width": 64}}, query="wait=20"
    )
    assert resized.status_code == 200 and resized.json_body["status"] == "succeeded", resized.body
    queued = api.post("/api/process", {"image_id": ids[1], "operation": "grayscale"})
    assert queued.status_code == 202, queued.body
    for analyzer in ("phash", "properties", "metadata"):
        analysis = api.post("/api/analyze", {"image_id": ids[0], "model": analyzer}, query="wait=20")
        assert analysis.json_body["status"] == "succeeded", analysis.body
    api.get("/api/tasks/{task_id}", task_id=queued.json_body["id"], query="wait=20")
    assert api.get("/api/images/{image_id}", image_id=ids[0]).json_body["analyses"]
    assert api.get("/api/images/{image_id}/tasks", image_id=ids[0], query="limit=2").status_code == 200
    assert api.get("/api/operations").status_code == 200
    assert api.get("/api/stats").status_code == 200

    # --- a dataset of scikit-learn's digits, uploaded through presigned POSTs
    digits = load_digits()
    for digit in DIGITS:
        for n, index in enumerate(np.flatnonzero(digits.target == digit)[:PER_DIGIT]):
            path = f"scenario-digits/{digit}/{n:02d}.png"  # not digits/: another test lists that prefix
            data = _png(digits.images[index])
            ticket = api.post("/api/datasets/uploads", {"path": path, "content_type": "image/png", "size": len(data)})
            assert ticket.status_code == 201, ticket.body
            _presigned_upload(ticket.json_body, data, "image/png")
    prefix = storage.dataset_key(admin["id"], "scenario-digits/")
    dataset = api.post("/api/datasets", {"name": "digits", "prefix": prefix})
    assert dataset.status_code == 201, dataset.body
    dataset = dataset.json_body
    assert dataset["item_count"] == len(DIGITS) * PER_DIGIT
    labelled = api.post("/api/datasets", {"name": "photos", "items": [{"image_id": ids[0], "label": "china"}]})
    assert labelled.status_code == 201, labelled.body
    assert api.get("/api/datasets").status_code == 200
    assert api.get("/api/datasets/{dataset_id}", dataset_id=dataset["id"]).status_code == 200
    assert api.call("DELETE", "/api/datasets/{dataset_id}", dataset_id=labelled.json_body["id"]).status_code == 204

    # --- training: one job to the end, one cancelled
    job_request = {
        "dataset_id": dataset["id"],
        "model_name": "digits",
        "algorithm": "logistic_regression",
        "features": "pixels",
        "feature_params": {"size": 8},
    }
    job = api.post("/api/training-jobs", job_request)
    assert job.status_code == 202, job.body
    other = api.post("/api/training-jobs", {**job_request, "model_name": "digits-cancelled"}).json_body
    cancelled = api.post("/api/training-jobs/{job_id}/cancel", job_id=other["id"])
    assert cancelled.status_code in (200, 409), cancelled.body
    trained = _finished(api, "/api/training-jobs/{job_id}", job_id=job.json_body["id"])
    assert trained["status"] == "succeeded", trained["error"]
    assert api.get("/api/training-jobs").status_code == 200

    # --- models: the trained one, its skops file registered again (multipart, then a direct upload)
    model = api.get("/api/models/{name}", name="digits").json_body["versions"][0]
    assert model["metrics"]["onnx_export"] == "available"  # the training job on Dask wrote the ONNX export
    onnx = api.get("/api/models/{name}/versions/{version}/onnx", name="digits", version=model["version"])
    assert onnx.status_code == 200 and onnx.json_body["kind"] == "sklearn_export", onnx.body
    artifact = storage.get(storage.model_key(admin["id"], "digits", model["version"], "skops"))
    metadata = {k: model[k] for k in ("framework", "task", "input_spec", "labels")} | {"name": "digits-copy"}
    boundary = "scenarioboundary"
    form = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n{json.dumps(metadata)}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="model.skops"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + artifact
        + f"\r\n--{boundary}--\r\n".encode()
    )
    registered = api.post(
        "/api/models", body=form, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    assert registered.status_code == 201, registered.body
    ticket = api.post("/api/models/uploads", {"size": len(artifact), "filename": "model.skops"})
    assert ticket.status_code == 201, ticket.body
    _presigned_upload(ticket.json_body, artifact, "application/octet-stream")
    second = api.post("/api/models", {**metadata, "upload_id": ticket.json_body["upload_id"]})
    assert second.status_code == 201 and second.json_body["version"] == 2, second.body
    assert api.get("/api/models").status_code == 200
    activate = api.post("/api/models/{name}/versions/{version}/activate", name="digits-copy", version=1)
    assert activate.status_code == 200, activate.body
    archive = api.post("/api/models/{name}/versions/{version}/archive", name="digits-copy", version=2)
    assert archive.status_code == 200, archive.body
    classified = api.post("/api/analyze", {"image_id": ids[0], "model": "digits-copy"}, query="wait=20")
    assert classified.json_body["model"] == {"name": "digits-copy", "version": 1}, classified.body

    # --- batches: run, resubmit (the same batch), export
    batch_request = {"image_ids": [*ids, broken], "operation": "thumbnail", "params": {"size": 32}}
    batch = api.post("/api/batches", batch_request)
    assert batch.status_code == 202, batch.body
    finished = _finished(api, "/api/batches/{batch_id}", batch_id=batch.json_body["id"])
    assert (finished["succeeded"], finished["failed"]) == (2, 1)
    assert api.post("/api/batches", batch_request).status_code == 200
    assert api.get("/api/batches").status_code == 200
    assert api.get("/api/batches/{batch_id}/export", batch_id=finished["id"]).status_code in (200, 202)
    # Cancel and resume, on batches left running with no driver (as after a scheduler restart).
    stranded = [_stranded_batch(admin["id"], ids) for _ in range(2)]
    cancelled = api.post("/api/batches/{batch_id}/cancel", batch_id=stranded[0])
    assert cancelled.status_code == 200 and cancelled.json_body["cancelled"] == 2, cancelled.body
    resumed = api.post("/api/batches/{batch_id}/resume", batch_id=stranded[1])
    assert resumed.status_code == 202, resumed.body
    assert _finished(api, "/api/batches/{batch_id}", batch_id=stranded[1])["succeeded"] == 2

    # --- a bulk import of the dataset's files (in S3, not yet images), and its failures
    imported = api.post("/api/imports", {"prefix": prefix})
    assert imported.status_code == 202, imported.body
    imported = _finished(api, "/api/imports/{import_id}", import_id=imported.json_body["id"])
    assert imported["status"] == "succeeded" and imported["ready"] == len(DIGITS) * PER_DIGIT, imported
    assert api.get("/api/imports").status_code == 200
    assert api.get("/api/imports/{import_id}/failures", import_id=imported["id"]).json_body["items"] == []
    # Cancel, on an import left running with no driver (as after a scheduler restart); again: 409.
    stranded_import = _stranded_import(admin["id"], prefix)
    cancelled = api.post("/api/imports/{import_id}/cancel", import_id=stranded_import)
    assert cancelled.status_code == 200 and cancelled.json_body["status"] == "cancelled", cancelled.body
    assert api.post("/api/imports/{import_id}/cancel", import_id=stranded_import).status_code == 409

    # --- the audit log of all of it
    assert api.get("/api/audit", query="limit=200").json_body["items"]


@pytest.fixture(scope="module")
def exchanges(stack_env, dask_cluster, chalice_app_module):
    """Every request of the scenario and its answer (the stack: authentication required)."""
    from chalice.test import Client
    from sqlalchemy import text

    from chalicelib import queues
    from chalicelib.config import get_settings, reset_settings
    from chalicelib.db.session import get_engine
    from chalicelib.db.tables import Base
    from chalicelib.services import identity
    from infra.local.pollers import QueuePoller

    with get_engine().begin() as conn:
        tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    identity._local_principal.cache_clear()
    with pytest.MonkeyPatch.context() as monkeypatch:
        reconfigure(monkeypatch, PIXELAKE_AUTH="required", SECRET_KEY=SECRET_KEY, PIXELAKE_ADMIN_EMAILS=ADMIN_EMAIL)
        settings = get_settings()
        handlers = {
            "ingest_upload": (settings.uploads_queue, chalice_app_module.ingest_upload),
            "run_task": (settings.tasks_queue, chalice_app_module.run_task),
            "run_ml_task": (settings.ml_tasks_queue, chalice_app_module.run_ml_task),
        }
        pollers = [
            QueuePoller(queues.sqs_client(), queues.queue_url(queue), handler, name=name, wait_s=1)
            for name, (queue, handler) in handlers.items()
        ]
        for poller in pollers:
            poller.start()
        try:
            with Client(chalice_app_module.app, stage_name="local", project_dir=str(PROJECT_DIR)) as client:
                api = RecordingApi(client)
                _scenario(api)
        finally:
            for poller in pollers:
                poller.stop()
            for poller in pollers:
                poller.join(timeout=10)
    reset_settings()
    return api.exchanges


@pytest.fixture(scope="module")
def chalice_app_module(stack_env):
    import app as chalice_app

    return chalice_app


@pytest.fixture(scope="module")
def document(exchanges) -> dict:
    answer = next(e for e in exchanges if e.path == "/openapi.json")
    return json.loads(answer.body)


def _validate(document: dict, exchange: Exchange) -> None:
    operation = document["paths"][exchange.path][exchange.method.lower()]
    documented = operation["responses"].get(str(exchange.status))
    assert documented is not None, f"{exchange.status} is not documented"
    content = documented.get("content")
    if not content:
        assert exchange.body in (b"", ""), f"{exchange.status} is documented without a body"
        return
    media_type = exchange.content_type.split(";")[0].strip()
    assert media_type in content, f"{exchange.status} answered {media_type}; documented: {sorted(content)}"
    if media_type == "application/json":
        schema = {**content[media_type]["schema"], "components": document["components"]}
        Draft202012Validator(schema, format_checker=FormatChecker()).validate(json.loads(exchange.body))


@pytest.mark.parametrize("doc", ROUTE_PARAMS)
def test_every_route_declares_the_body_of_each_success(doc: RouteDoc):
    assert doc.response is not None, f"{doc.method} {doc.path} has no response= declaration"
    successes = {status: body for status, body in doc.response.items() if 200 <= status < 300}
    assert successes, "no 2xx declared"
    for status, body in successes.items():
        assert (body is None) == (status == 204), f"{status}: only a 204 has no body"


@pytest.mark.parametrize("doc", ROUTE_PARAMS)
def test_every_route_answers_as_the_document_says(doc: RouteDoc, exchanges, document):
    mine = [e for e in exchanges if (e.method, e.path) == _key(doc)]
    assert any(200 <= e.status < 300 for e in mine), "the scenario never got a 2xx from this route"
    successes = document["paths"][doc.path][doc.method.lower()]["responses"]
    for status, documented in successes.items():
        if 200 <= int(status) < 300 and int(status) != 204:
            assert documented.get("content"), f"{status} has no schema"
    for exchange in mine:
        _validate(document, exchange)


def test_an_undocumented_field_is_refused_by_the_route_wrapper():
    """The wrapper encodes through the declared type: an extra field is a logged 500, not a silent answer."""
    from chalice import Blueprint

    from chalicelib.api import routing

    bp = Blueprint("responses_test")
    before = list(routing.ROUTES)
    try:

        @routing.route(
            bp, "/test/undocumented", methods=["GET"], summary="x", tag="test", auth=False, response=responses.Endpoint
        )
        def undocumented():
            return {"method": "GET", "path": "/", "summary": "x", "secret": "not documented"}

        doc = routing.ROUTES[-1]
        answer = routing.Response(body=undocumented(), status_code=200, headers={"Content-Type": "application/json"})
        with pytest.raises(routing.UndeclaredResponse, match="secret"):
            routing._encoded(doc, answer)
        good = routing.Response(body={"method": "GET", "path": "/", "summary": "x"}, status_code=200, headers={})
        assert json.loads(routing._encoded(doc, good).body) == {"method": "GET", "path": "/", "summary": "x"}
        with pytest.raises(routing.UndeclaredResponse, match="201"):
            routing._encoded(doc, routing.Response(body={}, status_code=201))
    finally:
        routing.ROUTES[:] = before
    assert json_type((responses.Index, routing.MediaBody("text/html"))) is responses.Index
