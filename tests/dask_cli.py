"""A Dask cluster run the way a user runs one: `dask scheduler` and `dask worker` processes started
with Dask's own command-line tools, configured only by what the README documents (the preload,
PYTHONPATH, and the worker environment file the local stack writes). Shared by the integration
tests that need such a cluster (test_external_cluster.py, test_imports.py, test_scheduler_restart.py)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import psutil
from polling import wait_for

ROOT = Path(__file__).resolve().parents[1]
DASK = str(Path(sys.executable).parent / "dask")
PRELOAD = "chalicelib.dask_preload"


def documented_worker_env(home: Path) -> dict[str, str]:
    """The environment of README's `set -a; . .pixelake/dask-worker.env` (written by the local stack)."""
    from infra.local.stack import LocalStack

    env_file = LocalStack(home=home).write_worker_environment()
    env = {"PATH": os.environ["PATH"], "HOME": str(home)}
    for line in env_file.read_text().splitlines():
        name, _, value = line.partition("=")
        env[name] = shlex.split(value)[0] if value else ""
    return env


class Cluster:
    """A scheduler and workers as separate processes (stopped by their own process ids)."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.processes: list[subprocess.Popen] = []
        self.logs: list[io.TextIOWrapper] = []
        self.address = ""

    def _spawn(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "w+")  # noqa: SIM115 — closed in stop()
        process = subprocess.Popen(command, cwd=self.tmp, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        self.logs.append(log)
        return process

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text()

    def start_scheduler(self, env: dict[str, str], *, preload: bool = True) -> str:
        scheduler_file = self.tmp / "scheduler.json"
        command = [DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address", "127.0.0.1:0"]
        command += ["--scheduler-file", str(scheduler_file)] + (["--preload", PRELOAD] if preload else [])
        process = self._spawn("scheduler", command, env)
        wait_for(lambda: scheduler_file.exists() or process.poll() is not None, timeout=60, what="dask scheduler")
        assert process.poll() is None, self.log("scheduler")
        self.address = json.loads(scheduler_file.read_text())["address"]
        return self.address

    def start_worker(self, name: str, env: dict[str, str]) -> subprocess.Popen:
        command = [DASK, "worker", self.address, "--nthreads", "1", "--host", "127.0.0.1"]
        command += ["--dashboard-address", "127.0.0.1:0", "--preload", PRELOAD, "--name", name]
        return self._spawn(name, command, env)

    def wait_for_workers(self, n: int) -> None:
        import distributed

        with distributed.Client(self.address, timeout=15) as client:
            client.wait_for_workers(n, timeout=90)

    def kill(self) -> None:
        """SIGKILL every process of the cluster, each `dask worker`'s nanny and worker process alike
        (nothing of it gets to say goodbye), and wait until they are gone."""
        victims = []
        for process in self.processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                parent = psutil.Process(process.pid)
                victims += [parent, *parent.children(recursive=True)]
        for victim in victims:
            with contextlib.suppress(psutil.NoSuchProcess):
                victim.kill()
        psutil.wait_procs(victims, timeout=30)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in self.logs:
            log.close()


def use_cluster(address: str) -> None:
    from chalicelib import compute
    from chalicelib.config import reset_settings

    compute.reset_client()
    os.environ["DASK_SCHEDULER_ADDRESS"] = address
    reset_settings()


def restore_cluster(previous: str | None) -> None:
    """Pixelake pointed back at the cluster it used before (the session's LocalCluster, say), or at
    none: never left on a cluster a test stopped, which every later test would wait on."""
    from chalicelib import compute
    from chalicelib.config import reset_settings

    compute.reset_client()
    if previous is None:
        os.environ.pop("DASK_SCHEDULER_ADDRESS", None)
    else:
        os.environ["DASK_SCHEDULER_ADDRESS"] = previous
    reset_settings()


def start_two_workers(cluster: Cluster, env: dict[str, str]) -> str:
    """A scheduler and two workers with `env` on `cluster`, once both are up; the scheduler's address."""
    cluster.start_scheduler(env)
    cluster.start_worker("worker-a", env)
    cluster.start_worker("worker-b", env)
    cluster.wait_for_workers(2)
    return cluster.address


@contextlib.contextmanager
def two_worker_cluster(tmp: Path, env: dict[str, str]):
    """A scheduler and two workers with `env`, Pixelake pointed at them until the block ends."""
    previous = os.environ.get("DASK_SCHEDULER_ADDRESS")
    cluster = Cluster(tmp)
    try:
        use_cluster(start_two_workers(cluster, env))
        yield cluster
    finally:
        restore_cluster(previous)
        cluster.stop()
