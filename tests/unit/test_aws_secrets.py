"""chalicelib.aws_secrets: Secrets Manager (moto) → DATABASE_URL and SECRET_KEY."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import pytest
from sqlalchemy.engine import make_url

from chalicelib import aws_secrets

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "p@ss:w/rd%#?"  # RDS-generated passwords contain characters a URL must escape


@pytest.fixture
def secrets(moto_endpoint, monkeypatch):
    """Two secrets on the run's moto server, deleted afterwards. (Not moto's in-process mock_aws:
    entering it resets every moto backend of this process, the server's included, and so the
    queues and buckets stack_env made for the rest of the run.)"""
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)  # the clients aws_secrets makes itself
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client("secretsmanager", endpoint_url=moto_endpoint, region_name="eu-west-1")
    run = uuid.uuid4().hex[:8]
    db = client.create_secret(
        Name=f"rds!db-{run}", SecretString=json.dumps({"username": "pixelake", "password": PASSWORD})
    )
    key = client.create_secret(Name=f"pixelake-dev-secret-key-{run}", SecretString="signing-key-123")
    yield {"client": client, "db": db["ARN"], "key": key["ARN"]}
    for arn in (db["ARN"], key["ARN"]):
        client.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)


def test_fills_database_url_and_secret_key_from_the_arns(secrets):
    environ = {
        "DATABASE_SECRET_ARN": secrets["db"],
        "DATABASE_HOST": "proxy.example.internal",
        "DATABASE_NAME": "pixelake",
        "DATABASE_PORT": "5432",
        "SECRET_KEY_SECRET_ARN": secrets["key"],
        "AWS_REGION": "eu-west-1",
    }
    assert aws_secrets.resolve_secret_environment(environ) == ["DATABASE_URL", "SECRET_KEY"]
    url = make_url(environ["DATABASE_URL"])
    assert (url.drivername, url.username, url.password, url.host, url.port, url.database) == (
        "postgresql+pg8000",
        "pixelake",
        PASSWORD,
        "proxy.example.internal",
        5432,
        "pixelake",
    )
    assert environ["SECRET_KEY"] == "signing-key-123"


def test_variables_already_set_win_and_nothing_is_called(secrets):
    class NoCalls:
        def get_secret_value(self, **kwargs):
            raise AssertionError("Secrets Manager was called")

    environ = {
        "DATABASE_URL": "postgresql+pg8000://local/db",
        "DATABASE_SECRET_ARN": secrets["db"],
        "SECRET_KEY": "local",
        "SECRET_KEY_SECRET_ARN": secrets["key"],
    }
    assert aws_secrets.resolve_secret_environment(environ, client=NoCalls()) == []
    assert aws_secrets.resolve_secret_environment({}, client=NoCalls()) == []
    assert environ["DATABASE_URL"] == "postgresql+pg8000://local/db"


def test_the_first_connection_reuses_the_password_the_cold_start_read(secrets):
    class NoCalls:
        def get_secret_value(self, **kwargs):
            raise AssertionError("Secrets Manager was called again")

    environ = {"DATABASE_SECRET_ARN": secrets["db"], "DATABASE_HOST": "proxy.example.internal"}
    assert aws_secrets.resolve_secret_environment(environ, client=secrets["client"]) == ["DATABASE_URL"]
    current_password = aws_secrets.current_password_source(environ, client=NoCalls())
    assert current_password is not None and current_password() == PASSWORD
    # Once older than max_age_s, the password is read again (RDS rotates it).
    stale = aws_secrets.current_password_source(environ, client=secrets["client"], max_age_s=0)
    secrets["client"].put_secret_value(
        SecretId=secrets["db"], SecretString=json.dumps({"username": "pixelake", "password": "rotated"})
    )
    assert stale is not None and stale() == "rotated"


def test_database_secret_without_host_is_an_error(secrets):
    with pytest.raises(RuntimeError, match="DATABASE_HOST"):
        aws_secrets.resolve_secret_environment({"DATABASE_SECRET_ARN": secrets["db"]}, client=secrets["client"])


def test_connect_args_turn_tls_on_only_when_required():
    assert aws_secrets.database_connect_args({}) == {}
    context = aws_secrets.database_connect_args({"DATABASE_SSL": "require"})["ssl_context"]
    assert context.check_hostname and context.verify_mode.name == "CERT_REQUIRED"


def test_module_imports_without_boto3_or_sqlalchemy():
    code = (
        "import sys, chalicelib.aws_secrets; "
        "print(sorted(m for m in ('boto3', 'sqlalchemy', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.stdout.strip() == "[]"


def test_entrypoint_execs_the_command_with_the_resolved_environment(tmp_path):
    # No ARNs given: nothing to resolve, the command runs as given.
    out = subprocess.run(
        [sys.executable, "-m", "chalicelib.aws_secrets", sys.executable, "-c", "print('ran')"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)},
    )
    assert out.stdout.strip() == "ran"


def test_new_connections_use_the_rotated_password(secrets):
    from sqlalchemy import create_engine, event

    engine = create_engine("sqlite://")  # any engine: the hook only edits the connect arguments
    environ = {"DATABASE_SECRET_ARN": secrets["db"]}
    assert aws_secrets.refresh_password_on_connect(engine, environ, client=secrets["client"], max_age_s=0)
    seen = []

    @event.listens_for(engine, "do_connect")
    def record(dialect, connection_record, cargs, cparams):
        seen.append(cparams.pop("password"))  # sqlite takes no password

    engine.connect().close()
    secrets["client"].put_secret_value(
        SecretId=secrets["db"], SecretString=json.dumps({"username": "pixelake", "password": "rotated"})
    )
    engine.dispose()
    engine.connect().close()
    assert seen == [PASSWORD, "rotated"]
    assert not aws_secrets.refresh_password_on_connect(create_engine("sqlite://"), {})


# What each function imports at cold start (app.py + its handler module) on AWS, where the
# secrets path runs before anything else.
FUNCTION_IMPORTS = {
    "api_handler": "import app",
    "ingest_upload": "import app, chalicelib.events.uploads",
    "run_task": "import app, chalicelib.events.tasks",
    "run_ml_task": "import app, chalicelib.events.tasks",
    "sweep_uploads": "import app, chalicelib.events.sweeps",
}


@pytest.mark.parametrize("function", sorted(FUNCTION_IMPORTS))
def test_each_function_cold_starts_on_the_secrets_path_without_sqlalchemy(moto_endpoint, function):
    client = boto3.client(
        "secretsmanager",
        endpoint_url=moto_endpoint,
        region_name="eu-west-1",
        aws_access_key_id="t",
        aws_secret_access_key="t",
    )
    suffix = function.replace("_", "-")
    db = client.create_secret(
        Name=f"rds!cold-{suffix}", SecretString=json.dumps({"username": "pixelake", "password": PASSWORD})
    )
    key = client.create_secret(Name=f"pixelake-cold-{suffix}-key", SecretString="signing-key-123")
    code = (
        f"import sys, json; {FUNCTION_IMPORTS[function]}; import os; "
        "print(json.dumps({'loaded': [m for m in ('sqlalchemy', 'pg8000', 'numpy') if m in sys.modules], "
        "'url': os.environ['DATABASE_URL'], 'key': os.environ['SECRET_KEY']}))"
    )
    environ = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(ROOT),
        "PIXELAKE_STAGE": "dev",
        "AWS_LAMBDA_FUNCTION_NAME": f"pixelake-dev-{function}",
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
        "DATABASE_SECRET_ARN": db["ARN"],
        "DATABASE_HOST": "proxy.example.internal",
        "DATABASE_SSL": "require",
        "SECRET_KEY_SECRET_ARN": key["ARN"],
    }
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=environ)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["loaded"] == []  # the ORM, the driver (the first query loads it) and numpy
    assert make_url(result["url"]).password == PASSWORD and result["key"] == "signing-key-123"
