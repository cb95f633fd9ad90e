"""Preload for any Dask scheduler and worker that runs Pixelake's jobs.

    PYTHONPATH=/path/to/pixelake dask scheduler --preload chalicelib.dask_preload
    PYTHONPATH=/path/to/pixelake dask worker tcp://SCHEDULER:8786 --preload chalicelib.dask_preload \\
        --dashboard-address 127.0.0.1:0

The scheduler unpickles every submitted job, so it needs `chalicelib` importable (PYTHONPATH, or
the worker image, which sets it) and nothing else. Workers run the jobs: they read the same
environment as the Lambdas (chalicelib/config.py documents each variable), and the ones a job
cannot do without are checked here, when the worker starts, instead of in every task:

    DATABASE_URL           (or DATABASE_HOST + DATABASE_SECRET_ARN, resolved by chalicelib.aws_secrets)
    PIXELAKE_STAGE         the stage whose bucket and database the jobs use (default local)
    PIXELAKE_BUCKET        default pixelake-<stage>
    AWS_ENDPOINT_URL       moto / LocalStack; required on the local stage, which never uses real AWS

A worker missing one of them refuses to start (exit status 1, the reason in its log): a worker
that starts and then fails every task is the silent failure this module exists to prevent.

`describe()` is what the submitting client asks the scheduler and each worker before it submits
(chalicelib.compute.check_cluster): the code they run and the stage, bucket and S3 endpoint they
use, so a mismatch is a clear error at submit instead of a job that hangs or writes elsewhere.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path

# A child of the `distributed` logger: the Dask command-line tools give that one a handler.
log = logging.getLogger("distributed.pixelake")

CODE_DIR = Path(__file__).resolve().parent


# Besides the settings (chalicelib/config.py): the credentials boto3 signs with.
AWS_CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
# Settings a worker has no use for: the API's signing key, and the address of the cluster it is in.
NOT_FOR_WORKERS = ("SECRET_KEY", "DASK_SCHEDULER_ADDRESS")


def worker_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables of this process that a Dask worker needs to run its jobs the same way."""
    import dataclasses

    from chalicelib.config import Settings

    environ = os.environ if environ is None else environ
    names = [f.metadata["env"] for f in dataclasses.fields(Settings)] + ["AWS_REGION", *AWS_CREDENTIALS]
    return {name: environ[name] for name in names if environ.get(name) and name not in NOT_FOR_WORKERS}


@functools.cache
def code_fingerprint() -> str:
    """A digest of chalicelib's Python sources: equal on the client and the cluster when both run the same code."""
    digest = hashlib.sha256()
    for path in sorted(CODE_DIR.rglob("*.py")):
        digest.update(path.relative_to(CODE_DIR).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def configuration_problems(environ: Mapping[str, str] | None = None) -> list[str]:
    """What a worker lacks to run Pixelake's jobs; empty when it has everything."""
    from chalicelib.config import Settings

    environ = os.environ if environ is None else environ
    problems = []
    try:
        settings = Settings.from_env(dict(environ))
    except ValueError as exc:
        return [f"invalid settings: {exc}"]
    if not environ.get("DATABASE_URL") and not (environ.get("DATABASE_HOST") and environ.get("DATABASE_SECRET_ARN")):
        problems.append("DATABASE_URL is not set (nor DATABASE_HOST and DATABASE_SECRET_ARN)")
    if settings.is_local and not settings.aws_endpoint_url:
        problems.append(
            "PIXELAKE_STAGE=local needs AWS_ENDPOINT_URL (the local stack's moto server or LocalStack): "
            f"without it the worker would use real AWS and a bucket named {settings.bucket!r} that anyone could own"
        )
    return problems


def describe() -> dict[str, str]:
    """The code and the storage this process would use (asked by the client before it submits)."""
    from chalicelib.config import Settings

    settings = Settings.from_env()
    return {
        "code": code_fingerprint(),
        "stage": settings.stage,
        "bucket": settings.bucket,
        "aws_endpoint_url": settings.aws_endpoint_url,
    }


def scheduler_code() -> str:
    """The scheduler's answer to the client's check: only the code matters there (it runs no job)."""
    return code_fingerprint()


def dask_setup(service) -> None:
    """Dask's preload hook: a worker without its configuration exits instead of failing every task."""
    from distributed import Worker

    if not isinstance(service, Worker):
        log.info("Pixelake code %s loaded on the Dask scheduler", code_fingerprint())
        return
    problems = configuration_problems()
    if problems:
        message = "Pixelake Dask worker refuses to start: " + "; ".join(problems)
        log.error(message)
        # Dask logs and ignores an Exception raised by a preload; SystemExit stops the worker process.
        raise SystemExit(message)
    info = describe()
    log.info(
        "Pixelake Dask worker ready: code %s, stage %s, bucket %s, endpoint %s",
        info["code"],
        info["stage"],
        info["bucket"],
        info["aws_endpoint_url"] or "AWS",
    )
