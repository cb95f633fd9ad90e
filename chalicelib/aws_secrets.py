"""Secrets Manager → the environment variables chalicelib/config.py reads.

On AWS no secret sits in a Lambda's or a container's environment: infra/aws passes the ARNs
of two secrets and the RDS Proxy endpoint, and this module turns them into DATABASE_URL and
SECRET_KEY once per cold start, before `get_settings()` is first called:

    DATABASE_SECRET_ARN  RDS-managed master secret, JSON {"username", "password"}
    DATABASE_HOST        RDS Proxy endpoint; DATABASE_PORT (5432) and DATABASE_NAME (pixelake)
    SECRET_KEY_SECRET_ARN  plain-string secret: the JWT signing key

Variables already set win, so the local stack (which sets DATABASE_URL and SECRET_KEY itself)
never calls AWS. RDS Proxy requires TLS: `database_connect_args()` gives the pg8000 argument
that turns it on (DATABASE_SSL=require, set by infra/aws). RDS rotates the password every 7
days: `refresh_password_on_connect(engine)` makes every new connection use the current one.

Containers (Dask workers, the migration task) use the same code as an entrypoint:
    python -m chalicelib.aws_secrets dask worker tcp://scheduler…:8786
    python -m chalicelib.aws_secrets alembic upgrade head
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import quote

DEFAULT_DATABASE_NAME = "pixelake"
DEFAULT_DATABASE_PORT = 5432


def _secrets_client(environ: MutableMapping[str, str]):
    from chalicelib import aws  # botocore: in the Lambda runtime and the worker image; imported only when used

    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    return aws.client("secretsmanager", region_name=region)


# Each secret's last value read in this process and when (time.monotonic()): the rotating
# password's first use reuses the read the cold start just made, instead of a new client and a
# third call to Secrets Manager (~70 ms of the api's first request, measured in issue 15).
_last_read: dict[str, tuple[str, float]] = {}


def secret_string(secret_arn: str, client: Any) -> str:
    value = client.get_secret_value(SecretId=secret_arn)["SecretString"]
    _last_read[secret_arn] = (value, time.monotonic())
    return value


def database_url_from_secret(
    secret_arn: str, host: str, *, client: Any, dbname: str = DEFAULT_DATABASE_NAME, port: int = DEFAULT_DATABASE_PORT
) -> str:
    """postgresql+pg8000://user:password@host:port/dbname from an RDS {"username", "password"} secret.

    Built with urllib, not sqlalchemy.engine.URL: this runs at every cold start on AWS and the
    ingest and worker functions never load SQLAlchemy otherwise (~150 ms). Every reserved
    character is percent-encoded, which SQLAlchemy's and pg8000's URL parsers both decode."""
    credentials = json.loads(secret_string(secret_arn, client))
    username, password = (quote(str(credentials[k]), safe="") for k in ("username", "password"))
    return f"postgresql+pg8000://{username}:{password}@{host}:{int(port)}/{quote(dbname, safe='')}"


def resolve_secret_environment(environ: MutableMapping[str, str] | None = None, client: Any = None) -> list[str]:
    """Set DATABASE_URL and SECRET_KEY from Secrets Manager where their ARNs are given and the
    variables are not already set. Returns the names it set (empty off AWS)."""
    environ = os.environ if environ is None else environ
    wanted_db = bool(environ.get("DATABASE_SECRET_ARN")) and not environ.get("DATABASE_URL")
    wanted_key = bool(environ.get("SECRET_KEY_SECRET_ARN")) and not environ.get("SECRET_KEY")
    if not (wanted_db or wanted_key):
        return []
    client = client or _secrets_client(environ)
    filled = []
    if wanted_db:
        if not environ.get("DATABASE_HOST"):
            raise RuntimeError("DATABASE_SECRET_ARN is set but DATABASE_HOST (the RDS Proxy endpoint) is not")
        environ["DATABASE_URL"] = database_url_from_secret(
            environ["DATABASE_SECRET_ARN"],
            environ["DATABASE_HOST"],
            client=client,
            dbname=environ.get("DATABASE_NAME") or DEFAULT_DATABASE_NAME,
            port=int(environ.get("DATABASE_PORT") or DEFAULT_DATABASE_PORT),
        )
        filled.append("DATABASE_URL")
    if wanted_key:
        environ["SECRET_KEY"] = secret_string(environ["SECRET_KEY_SECRET_ARN"], client)
        filled.append("SECRET_KEY")
    return filled


def database_connect_args(environ: MutableMapping[str, str] | None = None) -> dict:
    """pg8000 connect_args for create_engine: TLS when DATABASE_SSL=require (RDS Proxy)."""
    environ = os.environ if environ is None else environ
    if environ.get("DATABASE_SSL", "").lower() != "require":
        return {}
    import ssl

    # RDS Proxy presents an Amazon-issued certificate that the system trust store verifies.
    return {"ssl_context": ssl.create_default_context()}


class CurrentPassword:
    """The RDS secret's current password, re-read at most every `max_age_s` (RDS rotates it)."""

    def __init__(
        self, secret_arn: str, environ: MutableMapping[str, str], client: Any = None, max_age_s: float = 300.0
    ):
        self.secret_arn, self.environ, self.client, self.max_age_s = secret_arn, environ, client, max_age_s
        self.password: str | None = None
        self.read_at = 0.0

    def __call__(self) -> str:
        if self.password is None and self.secret_arn in _last_read:
            value, self.read_at = _last_read[self.secret_arn]
            self.password = json.loads(value)["password"]
        if self.password is None or time.monotonic() - self.read_at > self.max_age_s:
            self.client = self.client or _secrets_client(self.environ)
            self.password = json.loads(secret_string(self.secret_arn, self.client))["password"]
            self.read_at = time.monotonic()
        return self.password


def current_password_source(
    environ: MutableMapping[str, str] | None = None, client: Any = None, max_age_s: float = 300.0
) -> CurrentPassword | None:
    """The rotating password's source, or None without DATABASE_SECRET_ARN (the URL's password stands)."""
    environ = os.environ if environ is None else environ
    secret_arn = environ.get("DATABASE_SECRET_ARN")
    return CurrentPassword(secret_arn, environ, client, max_age_s) if secret_arn else None


def refresh_password_on_connect(
    engine: Any, environ: MutableMapping[str, str] | None = None, client: Any = None, max_age_s: float = 300.0
) -> bool:
    """Give each new DBAPI connection of `engine` the secret's current password, so pooled
    engines in warm Lambdas and long-lived Dask workers survive the rotation. Does nothing
    (returns False) without DATABASE_SECRET_ARN."""
    current_password = current_password_source(environ, client, max_age_s)
    if current_password is None:
        return False
    from sqlalchemy import event

    @event.listens_for(engine, "do_connect")
    def _use_current_password(dialect, connection_record, cargs, cparams):
        cparams["password"] = current_password()

    return True


def main(argv: list[str]) -> None:
    """Resolve the secrets into the environment, then exec the given command."""
    if not argv:
        raise SystemExit("usage: python -m chalicelib.aws_secrets COMMAND [ARG...]")
    resolve_secret_environment()
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
