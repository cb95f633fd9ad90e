"""Analytics exports and the pre-submit cluster check, each against a reference measured in the same run.

Exports: a scratch database `pixelake_bench_exports` (BENCH_DATABASE_URL's server, as
bench_database.py) loaded with generate_series (one user, rows/10 images, `rows` tasks with one
result each), then `export_account` writes the whole account as Hive-partitioned Parquet to moto's
S3. Reference: streaming the very same query without writing anything (the database floor). Each
runs in a fresh process, alternating, so peak memory (ru_maxrss) is the run's own: it should not grow
with the rows, since rows are streamed in record batches.

Submit check: a scheduler and two workers started with `dask scheduler` / `dask worker` (as the
README says); `check_cluster` (versions, scheduler code, each worker's code and settings) against a
bare submit-and-result round trip of a no-op on the same cluster.

    .venv/bin/python benchmarks/bench_exports.py [--rows 200000] [--repeat 2]   # prints JSON
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "benchmarks", REPO / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

DATABASE = "pixelake_bench_exports"
WORKER_OPTIONS = ["--nthreads", "1", "--host", "127.0.0.1", "--dashboard-address", "127.0.0.1:0"]
WORKER_OPTIONS += ["--preload", "chalicelib.dask_preload"]


def child(what: str) -> None:
    """One measurement in this fresh process: `export` or `read`; prints seconds, rows, peak RSS."""
    from sqlalchemy import func, select

    from chalicelib.db.session import session_scope
    from chalicelib.db.tables import User
    from chalicelib.services import exports

    with session_scope() as session:
        owner_id = session.scalars(select(func.min(User.id))).one()
    from chalicelib.db.tables import ProcessingTask

    start = time.perf_counter()
    if what == "export":
        prefix = exports.export_account(owner_id)
        from chalicelib import storage

        keys = list(storage.keys_under(prefix))
        size = sum(len(storage.get(k)) for k in keys)
        rows = None
    else:
        rows = sum(batch.num_rows for batch in exports._record_batches(ProcessingTask.owner_id == owner_id))
        keys, size = [], 0
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"s": seconds, "rows": rows, "files": len(keys), "bytes": size, "peak_rss_mb": peak_mb}))


def run_child(what: str, env: dict[str, str]) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", what], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def exports_vs_read(rows: int, repeat: int) -> dict:
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
    try:
        drop_database(admin, DATABASE)
        create_database(admin, DATABASE)
        upgrade(url)
        loaded = bench_database.load(url, rows)
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "AWS_ENDPOINT_URL": moto.endpoint,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "PIXELAKE_STAGE": "local",
        }
        os.environ.update(env)
        from chalicelib import queues, storage
        from chalicelib.config import get_settings, reset_settings
        from infra.local.resources import provision

        reset_settings()
        provision(storage.s3_client(), queues.sqs_client(), get_settings())
        runs: dict[str, list[dict]] = {"read": [], "export": []}
        for _ in range(repeat):
            for what in runs:
                runs[what].append(run_child(what, env))
        best = {what: min(results, key=lambda r: r["s"]) for what, results in runs.items()}
        exported_rows = loaded["rows"]["results"]
        return {
            "rows": exported_rows,
            "load_s": loaded["load_s"],
            "read_s": round(best["read"]["s"], 2),
            "export_s": round(best["export"]["s"], 2),
            "export_rows_per_s": round(exported_rows / best["export"]["s"]),
            "export_over_read": round(best["export"]["s"] / best["read"]["s"], 2),
            "parquet_mb": round(best["export"]["bytes"] / 1e6, 1),
            "files": best["export"]["files"],
            "peak_rss_mb": {what: round(best[what]["peak_rss_mb"]) for what in best},
            "repeat": repeat,
        }
    finally:
        moto.stop()
        drop_database(admin, DATABASE)
        if embedded is not None:
            embedded.stop()  # type: ignore[attr-defined]


def submit_check(repeat: int) -> dict:
    """check_cluster against a no-op round trip, on a CLI-started scheduler and two workers."""
    import distributed

    from chalicelib import compute
    from chalicelib.dask_preload import worker_environment

    tmp = Path(tempfile.mkdtemp(prefix="pixelake-bench-dask-"))
    dask = str(Path(sys.executable).parent / "dask")
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO), **worker_environment()}
    env.setdefault("DATABASE_URL", "postgresql://unused/for-this-benchmark")
    env.setdefault("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    scheduler_file = tmp / "scheduler.json"
    scheduler_command = [dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address", "127.0.0.1:0"]
    processes = [
        subprocess.Popen(
            [*scheduler_command, "--scheduler-file", str(scheduler_file), "--preload", "chalicelib.dask_preload"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)  # waiting for another process to come up, not synchronising a result
        address = json.loads(scheduler_file.read_text())["address"]
        for _ in range(2):
            processes.append(
                subprocess.Popen(
                    [dask, "worker", address, *WORKER_OPTIONS],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        os.environ.update({k: v for k, v in env.items() if k not in ("PATH", "PYTHONPATH")})
        with distributed.Client(address, timeout=15) as client:
            client.wait_for_workers(2, timeout=90)
            from chalicelib.config import reset_settings

            reset_settings()
            times: dict[str, list[float]] = {"round_trip": [], "check_cluster": []}
            for _ in range(repeat):
                start = time.perf_counter()
                client.submit(int, 1, pure=False).result()
                times["round_trip"].append(time.perf_counter() - start)
                start = time.perf_counter()
                compute.check_cluster(client)
                times["check_cluster"].append(time.perf_counter() - start)
        median = {name: statistics.median(values) * 1000 for name, values in times.items()}
        return {
            "workers": 2,
            "round_trip_ms": round(median["round_trip"], 2),
            "check_cluster_ms": round(median["check_cluster"], 2),
            "check_over_round_trip": round(median["check_cluster"] / median["round_trip"], 2),
            "checks_per_submit": f"at most one per {compute.CHECK_TTL_S} s per process",
            "repeat": repeat,
        }
    finally:
        for process in processes[::-1]:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def run(rows: int, repeat: int) -> dict:
    return {"exports": exports_vs_read(rows, repeat), "submit_check": submit_check(max(20, repeat * 10))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--child", choices=("export", "read"))
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    print(json.dumps(run(args.rows, args.repeat), indent=2))


if __name__ == "__main__":
    main()
