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
# Per run: two runs on one PostgreSQL server (parallel checkouts) must not drop each other's database.
DATABASE = f"pixelake_cold_starts_{os.getpid()}"

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


# --- the AWS secrets path: DATABASE_URL and SECRET_KEY from Secrets Manager (moto) ---

# A statement's first line: the environment a function has on AWS (ARNs, no DATABASE_URL), set
# inside the timed process so the row runs with the same interpreter start as every other row.
AWS_ENVIRONMENT = """
import os
os.environ.update({env!r})
for name in ("DATABASE_URL", "SECRET_KEY"):
    os.environ.pop(name, None)
"""

# The reference for the api's first request: a bare Chalice app whose one route reads the same
# secret with boto3 and answers from PostgreSQL with pg8000 — what any Python API on Lambda pays.
BARE_FIRST_REQUEST = """
import json, os
import boto3, pg8000.native
from chalice import Chalice
from chalice.test import Client
secrets = boto3.client("secretsmanager")
credentials = json.loads(secrets.get_secret_value(SecretId=os.environ["DATABASE_SECRET_ARN"])["SecretString"])
key = secrets.get_secret_value(SecretId=os.environ["SECRET_KEY_SECRET_ARN"])["SecretString"]
bare = Chalice(app_name="bare")
@bare.route("/api/images")
def images():
    db = pg8000.native.Connection(credentials["username"], password=credentials["password"] or None,
                                  host=os.environ["DATABASE_HOST"], port=int(os.environ["DATABASE_PORT"]),
                                  database=os.environ["DATABASE_NAME"])
    rows = db.run("SELECT id, key, status FROM images WHERE owner_id = :owner ORDER BY id DESC LIMIT 50", owner={user_id})
    db.close()
    return {{"images": [{{"id": r[0], "key": r[1], "status": r[2]}} for r in rows]}}
with Client(bare) as client:
    response = client.http.get("/api/images", headers={{"Authorization": "Bearer " + key[:8]}})
assert response.status_code == 200, response.body[:300]
"""

SECRETS_ROWS = {
    "api": "api (AWS secrets path): import app",
    "ingest": "ingest (AWS secrets path): import app + handler",
    "worker": "worker (AWS secrets path): import app + handler",
    "api_first_request": "api (AWS secrets path): import + first request (GET /api/images, token)",
    "bare_first_request": "reference: bare chalice + boto3 + pg8000, secrets + first request",
}


def aws_environment(env: dict) -> dict | None:
    """The functions' AWS environment against the stack: secrets in moto's Secrets Manager naming
    the stack's database. None when the database is reached over a unix socket (DATABASE_HOST
    names a TCP endpoint, as RDS Proxy is)."""
    from urllib.parse import urlsplit

    import boto3

    parts = urlsplit(env["DATABASE_URL"])
    if "unix_sock" in parts.query or not parts.hostname:
        return None
    # The stack's credentials, given explicitly: this process's environment does not hold them
    # (seed() sets them only while it runs).
    client = boto3.client(
        "secretsmanager",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    name = uuid.uuid4().hex[:8]
    database = client.create_secret(
        Name=f"rds!cold-{name}",
        SecretString=json.dumps({"username": parts.username or "postgres", "password": parts.password or ""}),
    )
    key = client.create_secret(Name=f"pixelake-cold-{name}-secret-key", SecretString=env["SECRET_KEY"])
    aws = {k: v for k, v in env.items() if k not in ("DATABASE_URL", "SECRET_KEY")}
    aws.update(
        DATABASE_SECRET_ARN=database["ARN"],
        DATABASE_HOST=parts.hostname,
        DATABASE_PORT=str(parts.port or 5432),
        DATABASE_NAME=parts.path.strip("/"),
        SECRET_KEY_SECRET_ARN=key["ARN"],
        AWS_REGION=env["AWS_DEFAULT_REGION"],
    )
    return aws


def secrets_path_statements(env: dict, seeded: dict) -> dict[str, str]:
    """The cold-start rows with the secrets path taken (empty without a TCP database)."""
    aws = aws_environment(env)
    if aws is None:
        return {}
    prefix = AWS_ENVIRONMENT.format(env=aws)
    return {
        SECRETS_ROWS["api"]: prefix + "import app",
        SECRETS_ROWS["ingest"]: prefix + "import app, chalicelib.events.uploads",
        SECRETS_ROWS["worker"]: prefix + "import app, chalicelib.events.tasks",
        SECRETS_ROWS["api_first_request"]: prefix + API_FIRST_REQUEST.format(repo=str(REPO), token=seeded["token"]),
        SECRETS_ROWS["bare_first_request"]: prefix + BARE_FIRST_REQUEST.format(user_id=seeded["user_id"]),
    }


def secrets_path_figures(best_ms: dict[str, float]) -> dict:
    """The secrets-path rows' figures: ms per function and the api's first request against the
    bare reference (target ≤ 1.5×)."""
    if SECRETS_ROWS["api"] not in best_ms:
        return {"skipped": "the benchmark database is on a unix socket: set BENCH_DATABASE_URL to a TCP server"}
    return {
        "api_import_ms": best_ms[SECRETS_ROWS["api"]],
        "ingest_ms": best_ms[SECRETS_ROWS["ingest"]],
        "worker_ms": best_ms[SECRETS_ROWS["worker"]],
        "api_first_request_ms": best_ms[SECRETS_ROWS["api_first_request"]],
        "bare_first_request_ms": best_ms[SECRETS_ROWS["bare_first_request"]],
        "api_first_request_ratio": round(
            best_ms[SECRETS_ROWS["api_first_request"]] / best_ms[SECRETS_ROWS["bare_first_request"]], 2
        ),
        "targets": {"api_first_request_ratio": 1.5},
    }


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
        **secrets_path_statements(env, seeded),
    }
    return rows, {"ingest": notable_packages(ingest), "worker": notable_packages(worker)}
