"""The whole of Pixelake on one machine, on loopback, with real parts.

PostgreSQL (DATABASE_URL, else embedded), S3 + SQS (AWS_ENDPOINT_URL, else moto's server with
an S3 journal), pollers feeding the queues to the same Chalice handlers the Lambdas run, and
the API. All state lives under $PIXELAKE_HOME (default .pixelake/).
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

from infra.local.pollers import QueuePoller, Schedule

log = logging.getLogger("pixelake.stack")
PROJECT_DIR = Path(__file__).resolve().parents[2]
LOCALHOST = "127.0.0.1"


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((LOCALHOST, port))
        except OSError:
            return False
    return True


def stage_environment(stage: str = "local") -> dict[str, str]:
    """The environment .chalice/config.json gives the stage (as `chalice local --stage` would)."""
    config = json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text())
    env = dict(config.get("environment_variables", {}))
    env.update(config.get("stages", {}).get(stage, {}).get("environment_variables", {}))
    return env


@dataclass
class LocalStack:
    home: Path
    port: int = 5000
    aws_port: int | None = None
    run_api: bool = True
    stopping: list = field(default_factory=list)
    urls: dict = field(default_factory=dict)

    def start(self) -> LocalStack:
        self.home.mkdir(parents=True, exist_ok=True)
        for name, value in stage_environment().items():
            os.environ.setdefault(name, value)
        self._start_database()
        self._start_aws()
        from chalicelib.config import reset_settings
        from chalicelib.db.session import reset_engine

        reset_settings()
        reset_engine()
        self._migrate()
        self._provision()
        self._start_pollers()
        self._start_dask()
        if self.run_api:
            self._start_api()
        return self

    def _start_database(self) -> None:
        if os.environ.get("DATABASE_URL"):
            self.urls["database"] = "DATABASE_URL"
            return
        from infra.local.postgres import EmbeddedPostgres

        postgres = EmbeddedPostgres(self.home / "postgres")
        os.environ["DATABASE_URL"] = postgres.start()
        self.urls["database"] = f"embedded PostgreSQL in {postgres.data_dir}"
        self.stopping.append(postgres.stop)

    def _start_aws(self) -> None:
        # Credentials are needed for signing even against moto; never real ones by accident.
        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        if os.environ.get("AWS_ENDPOINT_URL"):
            self.urls["aws"] = os.environ["AWS_ENDPOINT_URL"]
            return
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "pixelake-local")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "pixelake-local")
        from infra.local.s3_server import MotoServer

        port = self.aws_port if self.aws_port is not None else self.port + 1
        server = MotoServer(self.home / "s3", port=port if port and port_is_free(port) else 0)
        replayed = server.replay()
        server.start()
        os.environ["AWS_ENDPOINT_URL"] = server.endpoint
        self.urls["aws"] = f"{server.endpoint} (moto; {replayed} stored S3 writes replayed)"
        self.stopping.append(server.stop)

    def _migrate(self) -> None:
        from chalicelib.db.migrate import upgrade

        upgrade(os.environ["DATABASE_URL"])

    def _provision(self) -> None:
        from chalicelib import queues, storage
        from chalicelib.config import get_settings
        from infra.local.resources import provision

        self.queue_urls = provision(storage.s3_client(), queues.sqs_client(), get_settings())

    def _start_pollers(self) -> None:
        import app as chalice_app
        from chalicelib import queues
        from chalicelib.config import get_settings

        settings = get_settings()
        handlers = {
            settings.uploads_queue: ("ingest_upload", chalice_app.ingest_upload),
            settings.tasks_queue: ("run_task", chalice_app.run_task),
            settings.ml_tasks_queue: ("run_ml_task", chalice_app.run_ml_task),
            settings.inference_queue: ("run_inference", chalice_app.run_inference),
        }
        for queue_name, (function_name, handler) in handlers.items():
            poller = QueuePoller(
                queues.sqs_client(),
                self.queue_urls[queue_name],
                handler,
                name=function_name,
                region=settings.aws_region,
            )
            poller.start()
            self.stopping.append(poller.stop)
        # The upload sweep runs every 10 minutes on AWS; every minute here, so a dev sees it act.
        sweep = Schedule(chalice_app.sweep_uploads, name="sweep_uploads", interval_s=60, region=settings.aws_region)
        sweep.start()
        self.stopping.append(sweep.stop)

    def _start_dask(self) -> None:
        env_file = self.write_worker_environment()
        if os.environ.get("DASK_SCHEDULER_ADDRESS"):
            self.urls["dask"] = self._check_external_cluster(os.environ["DASK_SCHEDULER_ADDRESS"], env_file)
            return
        from chalicelib.compute import start_local_cluster
        from chalicelib.config import reset_settings

        # Started after the environment is complete: worker processes inherit it.
        cluster = start_local_cluster()
        os.environ["DASK_SCHEDULER_ADDRESS"] = cluster.scheduler_address
        reset_settings()
        self.urls["dask"] = f"{cluster.scheduler_address} (LocalCluster, dashboard {cluster.dashboard_link})"
        self.stopping.append(cluster.close)

    def write_worker_environment(self) -> Path:
        """$PIXELAKE_HOME/dask-worker.env: what Dask workers of your own need to run this stack's jobs.

        `set -a; . .pixelake/dask-worker.env; set +a` before `dask worker … --preload chalicelib.dask_preload`
        (README: Running on your own Dask cluster). Written on every start: the moto port may change.
        """
        from chalicelib.compute import DASK_CONFIG_DIR
        from chalicelib.dask_preload import worker_environment

        lines = [f"{name}={shlex.quote(value)}" for name, value in worker_environment().items()]
        lines.append(f"PYTHONPATH={shlex.quote(str(PROJECT_DIR))}")
        lines.append(f"DASK_CONFIG={shlex.quote(str(DASK_CONFIG_DIR))}")  # Pixelake's Dask settings
        path = self.home / "dask-worker.env"
        path.touch(mode=0o600)  # it holds the database URL
        path.write_text("\n".join(lines) + "\n")
        return path

    def _check_external_cluster(self, address: str, env_file: Path) -> str:
        """Say at start whether the cluster can run jobs; a cluster still starting is not an error yet."""
        from chalicelib import compute
        from chalicelib.errors import ComputeUnavailable

        try:
            compute.ready_client()
            workers = compute.worker_count()
        except ComputeUnavailable as exc:
            log.warning("the Dask cluster at %s cannot run Pixelake's jobs yet: %s", address, exc)
            return f"{address} (NOT READY: {exc}; worker environment in {env_file})"
        return f"{address} ({workers} workers; worker environment in {env_file})"

    def _start_api(self) -> None:
        from chalice.config import Config
        from chalice.local import create_local_server

        import app as chalice_app

        config = Config.create(
            chalice_stage="local", app_name="pixelake", chalice_app=chalice_app.app, project_dir=str(PROJECT_DIR)
        )
        server = create_local_server(chalice_app.app, config, LOCALHOST, self.port)
        thread = threading.Thread(target=server.server.serve_forever, name="api", daemon=True)
        thread.start()
        self.urls["api"] = f"http://{LOCALHOST}:{self.port}"
        self.stopping.append(server.shutdown)

    def stop(self) -> None:
        while self.stopping:
            stop = self.stopping.pop()
            try:
                stop()
            except Exception:  # stop everything else even if one part fails to stop cleanly
                log.exception("error while stopping")
