"""Bulk import throughput, in images per second per worker core, against the ingest floor.

A scratch database `pixelake_bench_imports` (BENCH_DATABASE_URL's server, as bench_database.py),
moto's S3 over HTTP, and a two-process LocalCluster (one thread each). `objects` tiny PNGs are put
under datasets/<user>/bench/; the import of that prefix (POST /api/imports' service) is timed by
the database's clock (started → finished). The floor: the same ingest (chalicelib/services/ingest.py)
of such objects, serially in a fresh process, with no Dask, no listing and no partition bookkeeping:
what one core does through the same code. Measured before and after the import; the faster counts
(the conservative ratio on a shared machine). Two ratios: by the wall, (import images/s ÷ worker
cores) ÷ floor images/s; by CPU, the workers' images per CPU second ÷ the floor's (moto's CPU is in
this process for both, so neither side pays for S3's emulator).

A second import (as many objects, or --killed-objects) has its driver's worker killed (SIGKILL) a third of the way in;
its counts must come out exact (the nanny starts a new worker, Dask runs the driver again, the
counted partitions are skipped). Then a batch (POST /api/batches' service: a thumbnail of every image
that import registered) has its driver's worker killed when a third of its tasks have finished; it
must end succeeded with every task succeeded once: no task left open, exactly one result each.

    .venv/bin/python benchmarks/bench_imports.py [--objects 10000] [--killed-objects N] [--floor 200]   # prints JSON
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "benchmarks", REPO / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

DATABASE = "pixelake_bench_imports"
WORKERS = 2
TARGET_RATIO = 0.7  # per worker core, of the serial in-process ingest of the same objects
IDLE_S = 5


def tiny_png(i: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (16 + i % 17, 12 + i % 5), (i % 256, (i // 256) % 256, 77)).save(out, "PNG")
    return out.getvalue()


def put_objects(prefix: str, count: int, start: int = 0) -> list[str]:
    from chalicelib import storage

    keys = [f"{prefix}{i // 1000:03d}/{i:06d}.png" for i in range(start, start + count)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: storage.put(k, tiny_png(int(k[-10:-4])), "image/png"), keys))
    return keys


def floor_child(owner_id: int, keys: list[str]) -> None:
    """In a fresh process (moto's CPU stays in the parent): the same ingest, serially, one core;
    the first object warms up and is not timed. Prints images, wall and CPU seconds."""
    from chalicelib import storage
    from chalicelib.config import get_settings
    from chalicelib.services.ingest import UploadedObject, ingest

    bucket = get_settings().bucket

    def one(key: str) -> None:
        head = storage.head(key)
        assert head is not None
        outcome = ingest(UploadedObject(bucket, key, int(head["ContentLength"]), head["ETag"].strip('"'), owner_id))
        assert outcome.status == "ready", outcome

    one(keys[0])
    wall, cpu = time.perf_counter(), time.process_time()
    for key in keys[1:]:
        one(key)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(json.dumps({"images": len(keys) - 1, "wall_s": wall, "cpu_s": cpu}))


def floor_images_per_s(owner_id: int, keys: list[str]) -> dict:
    import subprocess

    command = [sys.executable, __file__, "--floor-child", str(owner_id), *keys]
    out = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
    return {
        "images": out["images"],
        "wall_s": round(out["wall_s"], 2),
        "images_per_s": round(out["images"] / out["wall_s"], 1),
        "images_per_cpu_s": round(out["images"] / out["cpu_s"], 1),
    }


def worker_cpu_s() -> float:
    """CPU seconds the cluster's worker processes have used so far."""
    import psutil

    from chalicelib import compute

    total = 0.0
    for pid in compute.dask_client().run(os.getpid).values():
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


def poll_killing(read, *, finished, done: Callable[[Any], int], key: str, kill_at: int | None) -> tuple[Any, dict]:
    """Poll `read()` until `finished(row)`; the first time `done(row)` reaches `kill_at`, SIGKILL the
    worker running the job `key` (kill_worker_of). The last row, and the kill (pid, what it ran, at)."""
    kill: dict = {"pid": None, "ran": None, "at": None}
    while True:
        row = read()
        if kill_at is not None and kill["at"] is None and done(row) >= kill_at:
            kill = {**dict(zip(("pid", "ran"), kill_worker_of(key), strict=True)), "at": done(row)}
        if finished(row):
            return row, kill
        time.sleep(0.25)


def import_prefix(principal, prefix: str, *, kill_at: int | None = None) -> dict:
    from chalicelib.db.vocabulary import IMPORT_FINISHED
    from chalicelib.services import dask_submit, imports

    started = time.perf_counter()
    row_id = imports.create(principal, {"prefix": prefix}).id
    row, killed = poll_killing(
        lambda: imports.get(principal, row_id),
        finished=lambda row: row.status in IMPORT_FINISHED,
        done=lambda row: row.ready + row.failed,
        key=dask_submit.import_key(row_id),
        kill_at=kill_at,
    )
    seconds = (row.finished_at - row.started_at).total_seconds()
    return {
        "id": row.id,
        "status": row.status,
        "error": row.error,
        "counts": {name: getattr(row, name) for name in ("listed", "registered", "ready", "failed", "skipped")},
        "partitions": row.partitions,
        "seconds": round(seconds, 2),
        "wall_s_with_submit": round(time.perf_counter() - started, 2),
        "images_per_s": round(row.ready / seconds, 1),
        "killed_worker_pid": killed["pid"],
        "killed_worker_ran": killed["ran"],
    }


def kill_worker_of(key: str) -> tuple[int | None, str | None]:
    """SIGKILL the worker running the job `key` (its driver), or else one running a task of it (a
    key `key`-…): its pid and "driver" or "partition"; (None, None) when nothing of it runs."""
    import psutil

    from chalicelib import compute

    client = compute.dask_client()
    processing = client.processing()
    for ran, holds in (("driver", lambda k: k == key), ("partition", lambda k: str(k).startswith(f"{key}-"))):
        running = [worker for worker, keys in processing.items() if any(holds(k) for k in keys)]
        if running:
            pid = client.run(os.getpid, workers=running[:1])[running[0]]
            psutil.Process(pid).kill()
            return pid, ran
    return None, None


BATCH_OPERATION, BATCH_PARAMS = "thumbnail", {"size": 16}  # the tiny PNGs are 16-32 × 12-16 px


def killed_batch(principal, prefix: str, images: int) -> dict:
    """A batch over the images under `prefix` (as POST /api/batches creates it), its driver's worker
    killed when a third of its tasks have finished; its counts, and the tasks and results in the
    database, checked against `images`."""
    from sqlalchemy import text

    from chalicelib.db.session import session_scope
    from chalicelib.db.vocabulary import JOB_FINISHED
    from chalicelib.services import batches, dask_submit

    request = {"image_ids": None, "prefix": prefix, "dataset_id": None, "model": None}
    request.update(operation=BATCH_OPERATION, params=BATCH_PARAMS)
    started = time.perf_counter()
    state, new = batches.create(principal, request)
    assert new, "a batch of this request existed already"
    batch_id = state.batch.id

    def finished_tasks(state) -> int:
        return state.counts["succeeded"] + state.counts["failed"] + state.counts["cancelled"]

    state, killed = poll_killing(
        lambda: batches.get(principal, batch_id),
        finished=lambda state: state.batch.status in JOB_FINISHED,
        done=finished_tasks,
        key=dask_submit.batch_key(batch_id),
        kill_at=state.batch.total // 3,
    )
    wall = time.perf_counter() - started
    batch, counts = state.batch, state.counts
    with session_scope() as session:
        query = "SELECT status, count(*) FROM processing_tasks WHERE batch_id = :id GROUP BY status"
        rows = dict(session.execute(text(query), {"id": batch_id}).all())
        query = (
            "SELECT results, count(*) FROM (SELECT count(r.id) AS results FROM processing_tasks t "
            "LEFT JOIN results r ON r.task_id = t.id WHERE t.batch_id = :id GROUP BY t.id) per_task GROUP BY results"
        )
        results_per_task = {str(n): tasks for n, tasks in session.execute(text(query), {"id": batch_id}).all()}
        query = "SELECT count(*) FROM processing_tasks WHERE batch_id = :id AND attempts > 1"
        rerun = session.execute(text(query), {"id": batch_id}).scalar_one()
        query = (
            "SELECT count(*) FROM images i WHERE i.key LIKE :prefix AND NOT EXISTS "
            "(SELECT 1 FROM processing_tasks t WHERE t.batch_id = :id AND t.image_id = i.id)"
        )
        missing = session.execute(text(query), {"id": batch_id, "prefix": prefix + "%"}).scalar_one()
    seconds = (batch.finished_at - batch.started_at).total_seconds()
    exact = {
        "status succeeded": batch.status == "succeeded",
        "total == images": batch.total == sum(counts.values()) == images,
        "succeeded == total": counts["succeeded"] == batch.total,
        "failed == cancelled == 0": counts["failed"] == counts["cancelled"] == 0,
        "task rows: all succeeded": rows == {"succeeded": images},
        "one result per task": results_per_task == {"1": images},
        "no image missing": missing == 0,
        "a worker was killed": killed["pid"] is not None,
    }
    return {
        "id": batch_id,
        "operation": batch.operation,
        "params": batch.params,
        "status": batch.status,
        "error": batch.error,
        "images": images,
        "total": batch.total,
        "counts": counts,
        "task_rows_by_status": rows,
        "tasks_by_result_count": results_per_task,
        "tasks_run_more_than_once": rerun,
        "images_without_task": missing,
        "seconds": round(seconds, 2),
        "wall_s_with_submit": round(wall, 2),
        "tasks_per_s": round(counts["succeeded"] / seconds, 1),
        "killed_worker_pid": killed["pid"],
        "killed_worker_ran": killed["ran"],
        "killed_at_finished_tasks": killed["at"],
        "checks": exact,
        "counts_exact": all(exact.values()),
    }


def run(objects: int, floor: int, killed_objects: int | None = None) -> dict:
    killed_objects = killed_objects or objects
    import bench_database
    from databases import drop_database
    from sqlalchemy.engine import make_url

    from chalicelib.db.migrate import upgrade
    from chalicelib.db.session import normalize_url
    from infra.local.postgres import create_database
    from infra.local.s3_server import MotoServer

    admin, embedded = bench_database.server_url()
    admin = normalize_url(admin)
    url = make_url(admin).set(database=DATABASE).render_as_string(hide_password=False)
    moto = MotoServer(state_dir=None, port=0).start()
    cluster = None
    try:
        drop_database(admin, DATABASE)
        create_database(admin, DATABASE)
        upgrade(url)
        os.environ.update(
            DATABASE_URL=url,
            AWS_ENDPOINT_URL=moto.endpoint,
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
            AWS_DEFAULT_REGION="us-east-1",
            PIXELAKE_STAGE="local",
            PIXELAKE_AUTH="off",
        )
        from chalicelib import compute, queues, storage
        from chalicelib.config import get_settings, reset_settings
        from chalicelib.db.session import reset_engine, session_scope
        from chalicelib.db.users import ensure_local_user
        from chalicelib.services.identity import Principal
        from infra.local.resources import provision

        reset_settings()
        reset_engine()
        provision(storage.s3_client(), queues.sqs_client(), get_settings())
        with session_scope() as session:
            user_id = ensure_local_user(session).id
        principal = Principal(user_id=user_id)
        area = storage.dataset_prefix(user_id)
        put_s = time.perf_counter()
        put_objects(f"{area}bench/", objects)
        put_objects(f"{area}killed/", killed_objects, start=objects)
        put_objects(f"{area}warm/", 20, start=objects + killed_objects)
        floor_keys = put_objects(f"{area}floor/", 2 * floor, start=objects + killed_objects + 20)
        put_s = time.perf_counter() - put_s
        floors = [floor_images_per_s(user_id, floor_keys[:floor])]

        cluster = compute.start_local_cluster(WORKERS)
        os.environ["DASK_SCHEDULER_ADDRESS"] = cluster.scheduler_address
        reset_settings()
        compute.reset_client()
        import_prefix(principal, f"{area}warm/")  # the workers' first imports and connections
        idle = worker_cpu_s()
        time.sleep(IDLE_S)
        idle_cpu_per_s = (worker_cpu_s() - idle) / IDLE_S  # heartbeats and event loops, with nothing to do
        load_before, cpu_before = os.getloadavg()[0], worker_cpu_s()
        clean = import_prefix(principal, f"{area}bench/")
        load_after, clean["worker_cpu_s"] = os.getloadavg()[0], round(worker_cpu_s() - cpu_before, 1)
        clean["images_per_cpu_s"] = round(clean["counts"]["ready"] / clean["worker_cpu_s"], 1)
        clean["idle_cpu_s"] = round(idle_cpu_per_s * clean["seconds"], 1)
        net_cpu = clean["worker_cpu_s"] - clean["idle_cpu_s"]
        floors.append(floor_images_per_s(user_id, floor_keys[floor:]))
        killed = import_prefix(principal, f"{area}killed/", kill_at=killed_objects // 3)
        batch = killed_batch(principal, f"{area}killed/", killed["counts"]["registered"])
        n = killed_objects
        expected = {"listed": n, "registered": n, "ready": n, "failed": 0, "skipped": 0}
        best_floor = max(f["images_per_s"] for f in floors)
        best_floor_cpu = max(f["images_per_cpu_s"] for f in floors)
        per_core = clean["images_per_s"] / WORKERS
        return {
            "objects": objects,
            "workers": WORKERS,
            "threads_per_worker": 1,
            "partition_keys": get_settings().import_partition_keys,
            "put_s": round(put_s, 1),
            "floor": {"runs": floors, "images_per_s": best_floor, "images_per_cpu_s": best_floor_cpu},
            "import": clean,
            "images_per_s_per_core": round(per_core, 1),
            "ratio_per_core_to_floor": round(per_core / best_floor, 2),
            # CPU for CPU: immune to the other processes of a shared machine (the walls are not).
            "ratio_cpu_to_floor": round(clean["images_per_cpu_s"] / best_floor_cpu, 2),
            # …less the CPU the idle workers burn anyway (measured for IDLE_S before the import).
            "ratio_net_cpu_to_floor": round(clean["counts"]["ready"] / net_cpu / best_floor_cpu, 2),
            "target_ratio": TARGET_RATIO,
            "load_average_1m": [round(load_before, 1), round(load_after, 1)],
            "killed_run": {**killed, "objects": killed_objects},
            "killed_run_counts_right": killed["counts"] == expected and killed["status"] == "succeeded",
            "killed_batch": batch,
            "killed_batch_counts_right": batch["counts_exact"],
        }
    finally:
        if cluster is not None:
            from chalicelib import compute

            compute.reset_client()
            cluster.close()
        moto.stop()
        drop_database(admin, DATABASE)
        if embedded is not None:
            embedded.stop()  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--floor", type=int, default=200, help="objects ingested serially for the floor, twice")
    parser.add_argument("--killed-objects", type=int, help="objects of the import whose worker is killed (--objects)")
    parser.add_argument("--floor-child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_child:
        floor_child(int(args.floor_child[0]), args.floor_child[1:])
        return
    print(json.dumps(run(args.objects, args.floor, args.killed_objects), indent=2, default=str))


if __name__ == "__main__":
    main()
