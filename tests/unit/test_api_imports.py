"""The api function ships without numpy, OpenCV, Pillow or scikit-learn: importing the app must not need them.

Nor may it pay for the database layer or the AWS SDK at import (issue 9: cold starts): the ORM,
the driver and boto3 load on the first request that needs them.
"""

import json
import subprocess
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]
HEAVY = ["numpy", "cv2", "PIL", "sklearn", "scipy", "dask", "distributed", "skops", "onnxruntime"]
DEFERRED = ["sqlalchemy", "sqlalchemy.orm", "chalicelib.db.tables", "pg8000", "boto3"]


def modules_loaded_by_importing_app(candidates: list[str], statement: str = "import app") -> list[str]:
    code = f"import sys, json; {statement}; print(json.dumps([m for m in {candidates!r} if m in sys.modules]))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "PIXELAKE_STAGE": "local"},
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_importing_the_app_pulls_in_no_heavy_library():
    assert modules_loaded_by_importing_app(HEAVY) == []


def test_importing_the_app_defers_the_orm_the_driver_and_boto3():
    assert modules_loaded_by_importing_app(DEFERRED) == []


# Every function imports app.py and so every blueprint (issue 13: the ingest and worker cold
# starts): what only some routes use is imported by the calls that use it. Each of these costs
# a cold start its compile and execution (no .pyc in the deployment package).
ROUTE_ONLY = [
    "chalicelib.imaging.analyzers",  # services/models: a model name may not be an analyzer's
    "chalicelib.imaging.faces",
    "chalicelib.services.model_sources",  # model registration and uploads
    "chalicelib.services.import_runs",  # POST /api/imports (and the import's Dask partitions)
    "python_multipart",  # form uploads
]


def test_importing_the_app_defers_what_only_some_routes_use():
    assert modules_loaded_by_importing_app(ROUTE_ONLY) == []


def test_the_task_handler_loads_the_model_runner_for_model_tasks_only():
    handler = "import app, chalicelib.events.tasks"
    assert modules_loaded_by_importing_app(["chalicelib.services.model_runs"], handler) == []


# The first request after a cold start is nearly always an authenticated read (issue 15): the
# principal's lookup and the list of images go through pg8000 alone (chalicelib/db/direct.py),
# so that request never pays SQLAlchemy's import and the tables' mapping.
FIRST_REQUESTS = """
import json, sys
import app
from chalice.test import Client
with Client(app.app, stage_name="local", project_dir={project!r}) as client:
    answers = [client.http.get("/api/images", headers=headers) for headers in {headers!r}]
print(json.dumps({{
    "answers": [[a.status_code, [item["id"] for item in a.json_body.get("items", [])]] for a in answers],
    "loaded": [m for m in ("sqlalchemy", "chalicelib.db.tables") if m in sys.modules],
}}))
"""


def test_an_authenticated_first_request_never_imports_the_orm(db, monkeypatch):
    from accounts import SECRET_KEY, bearer, reconfigure

    from chalicelib.db import images, users
    from chalicelib.db.session import session_scope
    from chalicelib.services.identity import hash_api_key, issue_access_token, new_api_key

    reconfigure(monkeypatch, SECRET_KEY=SECRET_KEY)
    key = new_api_key()
    with session_scope() as session:
        user = users.create(session, email="first@example.com", password_hash="-")
        assert user is not None
        api_key = users.create_api_key(
            session, user_id=user.id, name="cold", prefix=key[:12], key_hash=hash_api_key(key)
        )
        image_ids = [
            images.create_pending(
                session,
                owner_id=user.id,
                bucket="b",
                key=f"uploads/{user.id}/{n}.jpg",
                filename=None,
                content_type="image/jpeg",
                size_bytes=1,
            ).id
            for n in range(2)
        ]
        user_id, api_key_id = user.id, api_key.id
    token, _ = issue_access_token(user_id)
    headers = [bearer(token), {"X-API-Key": key}, {"X-API-Key": key + "x"}]
    code = FIRST_REQUESTS.format(project=str(PROJECT_DIR), headers=headers)
    env = {k: v for k, v in db.items() if isinstance(v, str)}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", **env, "SECRET_KEY": SECRET_KEY, "PIXELAKE_AUTH": "required"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    newest_first = sorted(image_ids, reverse=True)
    assert found["answers"] == [[200, newest_first], [200, newest_first], [401, []]]
    assert found["loaded"] == []
    with session_scope() as session:
        assert users.get_api_key_for_owner(session, api_key_id, user_id).last_used_at is not None
