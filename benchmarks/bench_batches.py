"""Batches at 1,000,000 tasks: creation, progress reads and the driver's memory, each beside a
reference measured in the same run.

A scratch database `pixelake_bench_batches` is created on BENCH_DATABASE_URL's server (as
bench_database.py; dropped at the end), migrated to head and loaded with one user and `images`
ready images by generate_series. Then:

- creation: `services.batches.create_rows` for a prefix naming every image (the api's part: the
  batch row, the bounded count against the per-user limit), then `make_tasks` (the driver's part:
  the tasks by INSERT … SELECT in keyset chunks, the counters' trigger), against the bare floor:
  the same SELECT inserted at once into an unindexed, trigger-less copy of processing_tasks.
- progress: GET /api/batches/{id} through chalice.test.Client (p50/p95 over `requests`), against
  what it did before the counters: COUNT(*) … GROUP BY status over the batch's tasks.
- driver memory: `services.dask_jobs.dispatch_batch` (the real pages and partitions) with a
  partition function that is a stub marking its tasks
  succeeded in one UPDATE (so the counters' trigger runs too), 1,000 tasks a partition (the stub's
  tasks cost nothing), on a scheduler and two workers started as their own processes with Dask's
  command-line tools; peak Python memory of the driver process (tracemalloc, the Dask client's
  thread included) against the list of every task id that the driver held before.

    .venv/bin/python benchmarks/bench_batches.py [--images 1000000] [--requests 200]   # prints JSON
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "benchmarks", REPO / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from timing import percentile  # noqa: E402

DATABASE = "pixelake_bench_batches"
PREFIX = "uploads/{owner}/bench/"
TARGETS = {"create_s": 60, "progress_p95_ms": 20}


def stub_partition(task_ids: list[int]) -> dict[str, int]:
    """The workers' stand-in for run_batch_partition: the tasks succeed, in one statement."""
    from chalicelib.db import direct

    with direct.transaction() as db:
        db.run(
            "UPDATE processing_tasks SET status = 'succeeded', finished_at = now() WHERE id = ANY(CAST(:ids AS bigint[]))",
            ids=task_ids,
        )
    return {"succeeded": len(task_ids)}


def load(url: str, images: int) -> tuple[int, float]:
    from sqlalchemy import create_engine, text

    from chalicelib.db.session import normalize_url
    from chalicelib.db.users import LOCAL_USER_EMAIL

    engine = create_engine(normalize_url(url))
    start = time.perf_counter()
    with engine.begin() as conn:
        owner = conn.execute(text(f"INSERT INTO users (email) VALUES ('{LOCAL_USER_EMAIL}') RETURNING id")).scalar()
        conn.execute(
            text(
                "INSERT INTO images (owner_id, bucket, key, status, format) "
                "SELECT :owner, 'pixelake-local', :prefix || g || '.jpg', 'ready', 'JPEG' FROM generate_series(1, :n) g"
            ),
            {"owner": owner, "prefix": PREFIX.format(owner=owner), "n": images},
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE images"))
    engine.dispose()
    return owner, time.perf_counter() - start


def creation(owner: int) -> dict:
    """The real creation, then the floor (the same SELECT into a bare table), in the same run."""
    from sqlalchemy import text

    from chalicelib.db.session import session_scope
    from chalicelib.services import batches, dask_jobs
    from chalicelib.services.identity import Principal

    request = {"prefix": PREFIX.format(owner=owner), "operation": "thumbnail", "params": {"size": 64}}
    request.update(image_ids=None, dataset_id=None, model=None)
    start = time.perf_counter()
    state, new = batches.create_rows(Principal(owner), request)
    api_s = time.perf_counter() - start
    assert new and state.batch.total == state.counts["pending"], state.counts
    with session_scope() as session:  # as the driver starts it
        session.execute(text("UPDATE batches SET status = 'running' WHERE id = :id"), {"id": state.batch.id})
    made = dask_jobs.make_tasks(state.batch.id)
    create_s = time.perf_counter() - start
    assert made == state.batch.total, (made, state.batch.total)
    with session_scope() as session:
        session.execute(text("CREATE UNLOGGED TABLE bare_tasks (LIKE processing_tasks INCLUDING DEFAULTS)"))
    start = time.perf_counter()
    with session_scope() as session:
        session.execute(
            text(
                "INSERT INTO bare_tasks (owner_id, image_id, batch_id, kind, operation, params, status) "
                "SELECT owner_id, id, :batch, 'operation', 'thumbnail', '{}'::jsonb, 'pending' FROM images "
                "WHERE owner_id = :owner AND key LIKE :prefix"
            ),
            {"batch": state.batch.id, "owner": owner, "prefix": PREFIX.format(owner=owner) + "%"},
        )
    floor_s = time.perf_counter() - start
    with session_scope() as session:
        session.execute(text("DROP TABLE bare_tasks"))
    return {
        "batch_id": state.batch.id,
        "tasks": state.batch.total,
        "create_s": round(create_s, 1),
        "api_request_s": round(api_s, 2),
        "chunk": dask_jobs.TASK_CHUNK,
        "bare_insert_s": round(floor_s, 1),
        "create_over_bare": round(create_s / floor_s, 2),
        "target_s": TARGETS["create_s"],
    }


def progress_reads(url: str, batch_id: int, requests: int) -> dict:
    """GET /api/batches/{id} (the counters) and the COUNT(*) it replaced, in turn."""
    from chalice.test import Client
    from sqlalchemy import func, select

    import app as chalice_app
    from chalicelib.db import session as db_session
    from chalicelib.db.session import session_scope
    from chalicelib.db.tables import ProcessingTask

    def old_counts() -> None:
        with session_scope() as session:
            session.execute(
                select(ProcessingTask.status, func.count())
                .where(ProcessingTask.batch_id == batch_id)
                .group_by(ProcessingTask.status)
            ).all()

    api_ms, count_ms = [], []
    with Client(chalice_app.app, stage_name="local", project_dir=str(REPO)) as client:
        body = client.http.get(f"/api/batches/{batch_id}").json_body
        assert body["pending"] == body["total"], body
        old_counts()
        for n in range(requests):
            start = time.perf_counter()
            response = client.http.get(f"/api/batches/{batch_id}")
            api_ms.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200
            if n % 10 == 0:  # the slow reference, a tenth as often
                start = time.perf_counter()
                old_counts()
                count_ms.append((time.perf_counter() - start) * 1000)
    db_session.reset_engine()
    return {
        "requests": requests,
        "p50_ms": round(percentile(api_ms, 50), 1),
        "p95_ms": round(percentile(api_ms, 95), 1),
        "count_star_p50_ms": round(percentile(count_ms, 50), 1),
        "count_star_p95_ms": round(percentile(count_ms, 95), 1),
        "target_p95_ms": TARGETS["progress_p95_ms"],
    }


@contextlib.contextmanager
def cli_cluster(workers: int = 2):
    """A scheduler and workers started with `dask scheduler` / `dask worker`, each its own process,
    so that this process holds the driver only (a LocalCluster's scheduler would run in it)."""
    from distributed import Client

    tmp = Path(tempfile.mkdtemp(prefix="pixelake-bench-batches-"))
    dask = str(Path(sys.executable).parent / "dask")
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": f"{REPO}:{REPO / 'benchmarks'}",
        "DATABASE_URL": os.environ["DATABASE_URL"],
    }
    scheduler_file = tmp / "scheduler.json"
    options = ["--host", "127.0.0.1", "--dashboard-address", "127.0.0.1:0"]
    quiet = {"env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    processes = [
        subprocess.Popen([dask, "scheduler", "--port", "0", "--scheduler-file", str(scheduler_file), *options], **quiet)
    ]  # type: ignore[call-overload]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)  # waiting for another process to come up, not synchronising a result
        address = json.loads(scheduler_file.read_text())["address"]
        for _ in range(workers):
            processes.append(subprocess.Popen([dask, "worker", address, "--nthreads", "1", *options], **quiet))  # type: ignore[call-overload]
        with Client(address, timeout=15) as client:
            client.wait_for_workers(workers, timeout=90)
            yield client
    finally:
        for process in processes[::-1]:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def hold_until_set(event_name: str) -> None:
    """Runs on a worker until the Event is set: stands for a batch's running driver."""
    from distributed import Event

    Event(event_name).wait()


@contextlib.contextmanager
def live_driver(client, batch_id: int):
    """Pixelake pointed at `client`'s scheduler, holding a task under the batch's driver key, as
    while its driver runs: a read of a `running` batch whose driver the scheduler lacks submits
    it again (dask_submit._resume_if_driver_lost), which would run the million tasks."""
    from chalicelib import compute
    from chalicelib.config import reset_settings
    from chalicelib.services.dask_submit import batch_key

    os.environ["DASK_SCHEDULER_ADDRESS"] = client.scheduler.address
    reset_settings()
    compute.reset_client()
    from distributed import Event

    release = Event(f"bench-release-{batch_id}", client=client)
    placeholder = client.submit(hold_until_set, release.name, key=batch_key(batch_id), pure=False)
    try:
        yield
    finally:
        release.set()
        placeholder.result(timeout=30)  # its worker thread is free again
        compute.reset_client()
        os.environ.pop("DASK_SCHEDULER_ADDRESS")
        reset_settings()


def driver_memory(client, batch_id: int, partition_size: int = 1000) -> dict:
    """Peak traced memory of the dispatch loop over every task, and of the id list it replaced."""
    import bench_batches
    from sqlalchemy import select

    from chalicelib.db.session import session_scope
    from chalicelib.db.tables import Batch, ProcessingTask
    from chalicelib.ml.distributed import split_partitions
    from chalicelib.services.dask_jobs import dispatch_batch

    tracemalloc.start()
    with session_scope() as session:
        ids = list(session.scalars(select(ProcessingTask.id).where(ProcessingTask.batch_id == batch_id)))
        chunks = split_partitions(ids, 8)
    _, old_peak = tracemalloc.get_traced_memory()
    del ids, chunks
    tracemalloc.stop()

    size = partition_size  # stub tasks cost nothing: partitions larger than PIXELAKE_BATCH_PARTITION_SIZE
    client.submit(bench_batches.stub_partition, [], pure=False).result()  # warm: imports, connections
    tracemalloc.start()
    start = time.perf_counter()
    report = dispatch_batch(client, batch_id, bench_batches.stub_partition, partition_size=size, max_in_flight=4)
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    with session_scope() as session:
        batch = session.get_one(Batch, batch_id)
        succeeded = batch.tasks_succeeded
    assert not report.lost and succeeded == batch.total, (report, succeeded, batch.total)
    return {
        "tasks": batch.total,
        "partitions": report.partitions,
        "partition_size": size,
        "in_flight": 4,
        "dispatch_s": round(seconds, 1),
        "tasks_per_s": round(batch.total / seconds),
        "peak_mb": round(peak / 2**20, 1),
        "id_list_peak_mb": round(old_peak / 2**20, 1),
        "cluster": "dask scheduler + 2 dask worker processes (the driver's process holds no scheduler)",
    }


def run(images: int, requests: int) -> dict:
    from bench_database import server_url
    from databases import drop_database
    from sqlalchemy.engine import make_url

    from chalicelib.config import reset_settings
    from chalicelib.db import session as db_session
    from chalicelib.db.migrate import upgrade
    from chalicelib.db.session import normalize_url
    from infra.local.postgres import create_database

    admin, embedded = server_url()
    admin = normalize_url(admin)
    url = make_url(admin).set(database=DATABASE).render_as_string(hide_password=False)
    os.environ.update(
        DATABASE_URL=url,
        PIXELAKE_STAGE="local",
        PIXELAKE_AUTH="off",
        PIXELAKE_MAX_BATCH_IMAGES=str(max(images, 1_000_000)),
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
    )
    reset_settings()
    db_session.reset_engine()
    try:
        drop_database(admin, DATABASE)
        create_database(admin, DATABASE)
        upgrade(url)
        owner, load_s = load(url, images)
        report: dict = {"images": images, "load_s": round(load_s, 1)}
        report["create"] = creation(owner)
        batch_id = report["create"]["batch_id"]
        with cli_cluster() as client:
            with live_driver(client, batch_id):
                report["progress"] = progress_reads(url, batch_id, requests)
            report["driver"] = driver_memory(client, batch_id)
        return report
    finally:
        db_session.reset_engine()
        drop_database(admin, DATABASE)
        if embedded:
            embedded.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    print(json.dumps(run(args.images, args.requests), indent=2))


if __name__ == "__main__":
    main()
