"""What each function's cold start loads, found by running it: a fresh process imports `app`
(Lambda imports it for every function), then handles one real request or event against
PostgreSQL and moto's S3 + SQS, and lists sys.modules afterwards. bench_pipeline.cold_imports
then times, in fresh interpreters, the import of exactly those modules — nothing hand-listed,
so nothing the first event pulls in is missed — and the api's whole first request.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATABASE = "pixelake_cold_starts"

# The api's first request, as API Gateway would send it (through chalice.test.Client).
API_FIRST_REQUEST = """
import app
from chalice.test import Client
with Client(app.app, stage_name="local", project_dir={repo!r}) as client:
    response = client.http.get("/api/images", headers={{"Authorization": "Bearer {token}"}})
assert response.status_code == 200, response.body[:300]
"""

# One SQS event through the function's handler, as the Lambda runtime calls it.
FIRST_EVENT = """
import json, sys
import app
response = app.{function}({event!r}, None)
# Modules made in C without a spec (Cython's `cython_runtime`) come with their extension; not importable by name.
modules = [name for name, module in sys.modules.items() if name != "__main__" and getattr(module, "__spec__", None)]
print(json.dumps({{"response": response, "modules": modules}}))
"""

# Import the listed modules in order; a module that cannot be imported on its own is reported.
IMPORT_MODULES = """
import importlib, sys
for name in {modules!r}:
    try:
        importlib.import_module(name)
    except Exception:
        print(name, file=sys.stderr)
"""


def sqs_event(body: str) -> dict:
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": "cold-start",
                "body": body,
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:cold-start",
                "awsRegion": "us-east-1",
            }
        ]
    }


@contextlib.contextmanager
def stack() -> Iterator[dict]:
    """A migrated scratch database and moto's S3 + SQS; yields the functions' environment."""
    from bench_database import server_url
    from sqlalchemy.engine import make_url

    from chalicelib.db.migrate import upgrade
    from chalicelib.db.session import normalize_url
    from infra.local.postgres import create_database
    from infra.local.s3_server import MotoServer

    sys.path.insert(0, str(REPO / "tests"))
    from databases import drop_database

    admin, embedded = server_url()
    admin = normalize_url(admin)
    url = make_url(admin).set(database=DATABASE).render_as_string(hide_password=False)
    moto = MotoServer(state_dir=None, port=0).start()
    try:
        drop_database(admin, DATABASE)
        create_database(admin, DATABASE)
        upgrade(url)
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "AWS_ENDPOINT_URL": moto.endpoint,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "PIXELAKE_STAGE": "local",
            "PIXELAKE_AUTH": "required",
            "SECRET_KEY": uuid.uuid4().hex * 2,
        }
        yield env
    finally:
        moto.stop()
        drop_database(admin, DATABASE)
        if embedded:
            embedded.stop()


@contextlib.contextmanager
def _environment(env: dict) -> Iterator[None]:
    """This process's clients pointed at the stack (to seed it), restored afterwards."""
    from chalicelib import queues, storage
    from chalicelib.config import reset_settings
    from chalicelib.db.session import reset_engine

    saved = dict(os.environ)
    os.environ.update(env)
    for reset in (reset_settings, reset_engine, storage.s3_client.cache_clear, queues.sqs_client.cache_clear):
        reset()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        for reset in (reset_settings, reset_engine, storage.s3_client.cache_clear, queues.sqs_client.cache_clear):
            reset()


def seed(env: dict) -> dict:
    """A user with a token, an uploaded JPEG's S3 notification, and a way to make resize tasks."""
    from inputs import photo_jpeg

    from chalicelib import queues, storage
    from chalicelib.config import get_settings
    from chalicelib.db import users
    from chalicelib.db.session import session_scope
    from chalicelib.services.identity import issue_access_token
    from infra.local.resources import provision

    with _environment(env):
        provision(storage.s3_client(), queues.sqs_client(), get_settings())
        with session_scope() as session:
            user_id = users.create(session, email="cold@example.com", password_hash="-").id
        token, _ = issue_access_token(user_id)
        bucket = get_settings().bucket
        storage.put(f"uploads/{user_id}/cold.jpg", photo_jpeg((1600, 1200)), "image/jpeg")
    return {"user_id": user_id, "token": token, "bucket": bucket}


def upload_notification(seeded: dict) -> str:
    """The body S3 sends to the uploads queue for the seeded JPEG."""
    return json.dumps(
        {
            "Records": [
                {
                    "eventName": "ObjectCreated:Post",
                    "s3": {
                        "bucket": {"name": seeded["bucket"]},
                        "object": {"key": f"uploads/{seeded['user_id']}/cold.jpg", "size": 1, "eTag": uuid.uuid4().hex},
                    },
                }
            ]
        }
    )


def resize_task(env: dict, seeded: dict) -> int:
    """A pending resize task on the (ingested) seeded image."""
    from chalicelib.db import tasks
    from chalicelib.db.session import session_scope
    from chalicelib.db.tables import Image

    with _environment(env), session_scope() as session:
        image = session.query(Image).filter_by(key=f"uploads/{seeded['user_id']}/cold.jpg").one()
        assert image.status == "ready", (image.status, image.error)
        return tasks.create(
            session,
            owner_id=seeded["user_id"],
            image_id=image.id,
            kind="operation",
            operation="resize",
            params={"width": 320},
        ).id


def first_event_modules(env: dict, function: str, body: str) -> list[str]:
    """The modules loaded by a fresh process that imported app and handled one event; fails loudly
    if the handler reported the message for retry."""
    script = FIRST_EVENT.format(function=function, event=sqs_event(body))
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["response"] == {"batchItemFailures": []}, (result["response"], out.stderr[-2000:])
    return result["modules"]


NOTABLE = ("sqlalchemy", "pg8000", "boto3", "botocore", "numpy", "cv2", "PIL", "chalice", "msgspec")


def notable_packages(modules: list[str]) -> list[str]:
    return sorted({m.split(".")[0] for m in modules} & set(NOTABLE))


def statements(env: dict) -> tuple[dict[str, str], dict[str, list[str]]]:
    """name → the statement a fresh interpreter runs, for the rows found by running the functions;
    and the notable packages each function's first event loaded."""
    seeded = seed(env)
    ingest = first_event_modules(env, "ingest_upload", upload_notification(seeded))
    worker = first_event_modules(env, "run_task", json.dumps({"task_id": resize_task(env, seeded)}))
    rows = {
        "api: import + first request (GET /api/images, token)": API_FIRST_REQUEST.format(
            repo=str(REPO), token=seeded["token"]
        ),
        "ingest: import app + handler": "import app, chalicelib.events.uploads",
        "ingest: + every module its first event loaded": IMPORT_MODULES.format(modules=ingest),
        "worker: import app + handler": "import app, chalicelib.events.tasks",
        "worker: + every module its first event loaded": IMPORT_MODULES.format(modules=worker),
    }
    return rows, {"ingest": notable_packages(ingest), "worker": notable_packages(worker)}
