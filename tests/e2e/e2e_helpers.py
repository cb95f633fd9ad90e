"""The local stack (`make dev`) in a subprocess, with the README's defaults: embedded
PostgreSQL and moto, state in a temporary PIXELAKE_HOME."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import requests
from polling import wait_for

PROJECT_DIR = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StackProcess:
    def __init__(self, home: Path):
        self.home = home
        self.port = free_port()
        self.aws_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.log_path = home / "stack.log"

    def start(self) -> StackProcess:
        # The stack starts its own parts, as `make dev` does: not the test session's database, S3
        # or Dask cluster (whose workers use the session's S3 endpoint, which the stack's submit
        # check refuses).
        own = (
            "DATABASE_URL",
            "AWS_ENDPOINT_URL",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "DASK_SCHEDULER_ADDRESS",
        )
        env = {k: v for k, v in os.environ.items() if k not in own}
        env.update(PIXELAKE_HOME=str(self.home), PORT=str(self.port), PIXELAKE_AWS_PORT=str(self.aws_port))
        self.home.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "infra.local"], cwd=PROJECT_DIR, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        wait_for(self._healthy, timeout=90, interval=0.25, what=f"the stack to answer (log: {self.log_path})")
        return self

    def _healthy(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"the stack exited: {self.log_path.read_text()[-3000:]}")
        try:
            return requests.get(f"{self.url}/health", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def s3(self):
        """A client of the stack's own S3 (its moto server), to put objects there as another tool would."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{self.aws_port}",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def wait_until_processed(self, image_id: int, timeout: float = 60, headers: dict | None = None) -> dict:
        def processed():
            image = requests.get(f"{self.url}/api/images/{image_id}", headers=headers, timeout=5).json()
            return image if image["status"] in ("ready", "failed") else None

        return wait_for(processed, timeout=timeout, what=f"image {image_id} to be processed")


@pytest.fixture(scope="module")
def stack_home():
    home = Path(tempfile.mkdtemp(prefix="pixelake-e2e-"))
    yield home


@pytest.fixture(scope="module")
def stack(stack_home):
    process = StackProcess(stack_home).start()
    yield process
    if process.process.poll() is None:
        process.stop()
