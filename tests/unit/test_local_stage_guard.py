"""A local-stage process never reaches real AWS: without AWS_ENDPOINT_URL it refuses to make a client."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from chalicelib.dask_preload import configuration_problems

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("client", ["storage.s3_client()", "queues.sqs_client()"])
def test_local_stage_without_an_endpoint_makes_no_aws_client(client):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PIXELAKE_"))}
    code = f"from chalicelib import storage, queues; {client}"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "PIXELAKE_STAGE=local needs AWS_ENDPOINT_URL" in out.stderr
    # A deployed stage talks to AWS itself.
    deployed = {**env, "PIXELAKE_STAGE": "dev", "AWS_DEFAULT_REGION": "us-east-1", "SECRET_KEY": "x" * 32}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=deployed, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_worker_configuration_problems():
    local = {"DATABASE_URL": "postgresql://db/pixelake", "AWS_ENDPOINT_URL": "http://127.0.0.1:5001"}
    assert configuration_problems(local) == []
    assert configuration_problems({"DATABASE_URL": "postgresql://db/pixelake"})[0].startswith(
        "PIXELAKE_STAGE=local needs AWS_ENDPOINT_URL"
    )
    assert configuration_problems({"AWS_ENDPOINT_URL": "http://127.0.0.1:5001"}) == [
        "DATABASE_URL is not set (nor DATABASE_HOST and DATABASE_SECRET_ARN)"
    ]
    on_aws = {"PIXELAKE_STAGE": "prod", "DATABASE_HOST": "proxy", "DATABASE_SECRET_ARN": "arn:aws:secretsmanager:x"}
    assert configuration_problems(on_aws) == []
    assert configuration_problems({"PIXELAKE_STAGE": "prod", "PIXELAKE_AUTH": "off"})[0].startswith("invalid settings")


def test_a_local_cluster_whose_workers_refuse_to_start_is_compute_unavailable():
    """Without DASK_SCHEDULER_ADDRESS a read that looks for a driver starts a LocalCluster; when its
    workers' preload refuses (here: no S3 endpoint), that is ComputeUnavailable with the reason,
    which the services turn into a warning or a failed job, not a 500."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PIXELAKE_", "DASK_"))}
    env["DATABASE_URL"] = "postgresql://postgres@127.0.0.1:5432/test"
    code = (
        "from chalicelib import compute\n"
        "from chalicelib.errors import ComputeUnavailable\n"
        "if __name__ == '__main__':\n"
        "    try:\n"
        "        compute.dask_client()\n"
        "    except ComputeUnavailable as exc:\n"
        "        print('unavailable:', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert "unavailable: the local Dask cluster did not start" in out.stdout, out.stdout + out.stderr[-2000:]
    assert "PIXELAKE_STAGE=local needs AWS_ENDPOINT_URL" in out.stderr
