"""`make bench`: every benchmark, then docs/benchmarks/report.json, report.md and plots.

Inputs are generated from photos that packages ship (benchmarks/inputs.py). Every speed figure
comes with a reference measured in the same run, because the machine is shared: the ratios
are what carry from one run (or machine) to the next, not the milliseconds.

    .venv/bin/python benchmarks/bench_suite.py [--quick] [--skip e2e,database,batches,dask,exports,imports,journal,models,training]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "benchmarks"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

OUT = REPO / "docs" / "benchmarks"

# Lambda list prices, us-east-1, x86, as of 2026-11 (see docs/cost.md).
LAMBDA_GB_SECOND = 0.0000166667
LAMBDA_REQUEST = 0.20 / 1_000_000
INGEST_MEMORY_MB = (1024, 1769)
# Amazon Rekognition Image list price for the first million images a month, per image (assumed,
# not checked online from here): DetectLabels and DetectFaces are each billed as one image.
REKOGNITION_PER_IMAGE = 0.001


def dask_scaling(quick: bool) -> dict:
    import tempfile

    import bench_dask_scaling as dask_bench

    items, side = (40, 1600) if quick else (120, 2400)
    with tempfile.TemporaryDirectory(prefix="pixelake-bench-dask-") as tmp:
        names = dask_bench.make_jpegs(Path(tmp), items, side)
        serial = dask_bench.serial_seconds(tmp, names)
        # The sizes alternate, each on a cluster of its own (as bench_dask_scaling.py does), so a
        # change in the machine's load falls on both sizes; each size's fastest run counts.
        pairs = list(dask_bench.paired_runs(tmp, names, repeat=1 if quick else 2, partitions=10))
        runs = {n: min((pair[n] for pair in pairs), key=lambda run: run["wall"]) for n in (1, 2)}
    one, two = runs[1], runs[2]
    others = max(0.0, two["machine_busy"] * two["cores"] - two["worker_cpu"] / two["wall"])
    return {
        "items": items,
        "side": side,
        "serial_s": round(serial, 2),
        "workers": {
            str(n): {k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()} for n, r in runs.items()
        },
        "speedup": round(one["wall"] / two["wall"], 2),
        "other_processes_cores_during_2_workers": round(others, 2),
    }


def cost_model(report: dict) -> dict:
    """Dollars per 1,000 uploads on Lambda from the measured CPU time of one 12 MP ingest."""
    ingest_ms = report["pipeline"]["ingest"]["timings"]["ingest"]["cpu_ms"]
    rows = {}
    for memory in INGEST_MEMORY_MB:
        # Below 1,769 MB a function gets that fraction of one vCPU: the same CPU work takes longer.
        duration_s = ingest_ms / 1000 / min(1.0, memory / 1769)
        per_upload = duration_s * memory / 1024 * LAMBDA_GB_SECOND + LAMBDA_REQUEST
        rows[f"{memory} MB"] = {"duration_ms": round(duration_s * 1000), "usd_per_1000": round(per_upload * 1000, 4)}
    return {
        "ingest_cpu_ms": ingest_ms,
        "lambda": rows,
        "rekognition_usd_per_1000_per_api": REKOGNITION_PER_IMAGE * 1000,
        "prices": {
            "lambda_gb_second": LAMBDA_GB_SECOND,
            "lambda_per_request": LAMBDA_REQUEST,
            "rekognition_per_image": REKOGNITION_PER_IMAGE,
        },
    }


def isolated(run):
    """run() with this process's environment, settings and database engine restored afterwards: a
    section points DATABASE_URL at its scratch database (dropped when it ends), and the next
    section must not inherit it."""
    from chalicelib.config import reset_settings
    from chalicelib.db import session as db_session

    saved = dict(os.environ)
    try:
        return run()
    finally:
        os.environ.clear()
        os.environ.update(saved)
        reset_settings()
        db_session.reset_engine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--skip",
        default="",
        help="comma-separated: e2e, database, batches, dask, exports, imports, journal, models, training",
    )
    parser.add_argument(
        "--imports-from",
        type=Path,
        help="the imports section from this JSON of a separate `bench_imports.py` run (15 min at 10,000 objects)",
    )
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    started = time.perf_counter()
    report: dict = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
        },
    }
    import bench_photos as photos
    import bench_pipeline as pipeline

    repeat = 5 if args.quick else 15
    sections = {
        "ingest": lambda: pipeline.ingest(repeat),
        "ingest_steps": lambda: pipeline.ingest_steps(repeat),
        "thumbnails": lambda: pipeline.thumbnails(repeat),
        "face_recall": lambda: pipeline.face_recall(3 if args.quick else 8),
        "cold_imports": lambda: pipeline.cold_imports(3 if args.quick else 7),
        "peak_memory": pipeline.peak_memory,
        "heic_ingest": lambda: photos.heic_ingest(3 if args.quick else 9),
        "colour_conversion": lambda: photos.colour_conversion(repeat),
        "nclx_conversion": lambda: photos.nclx_conversion(3 if args.quick else 9),
        "face_confidence": photos.face_confidence,
    }
    report["pipeline"] = {}
    for name, run in sections.items():
        print(f"… {name}", file=sys.stderr, flush=True)
        report["pipeline"][name] = run()
    if "database" not in skip:
        import bench_database

        print("… database (1,000,000 results rows)", file=sys.stderr, flush=True)
        os.environ.setdefault("PIXELAKE_STATS_MAX_AGE", "60")
        report["database"] = isolated(
            lambda: bench_database.run(100_000 if args.quick else 1_000_000, 20 if args.quick else 40)
        )
    if "batches" not in skip:
        import bench_batches

        print("… batches at 1,000,000 tasks: creation, progress reads, driver memory", file=sys.stderr, flush=True)
        report["batches"] = isolated(
            lambda: bench_batches.run(100_000 if args.quick else 1_000_000, 50 if args.quick else 200)
        )
    if "e2e" not in skip:
        import bench_e2e

        print("… end to end through the local stack", file=sys.stderr, flush=True)
        report["e2e"] = isolated(lambda: bench_e2e.run(20 if args.quick else 100))
    if "dask" not in skip:
        print("… Dask 1 → 2 workers", file=sys.stderr, flush=True)
        report["dask"] = isolated(lambda: dask_scaling(args.quick))
    if "exports" not in skip:
        import bench_exports

        print("… exports and the pre-submit cluster check", file=sys.stderr, flush=True)
        report["exports"] = isolated(lambda: bench_exports.run(100_000 if args.quick else 1_000_000, 2))
    if "models" not in skip:
        import bench_models

        print("… registered models: ResNet-50 inference, similar over stored vectors", file=sys.stderr, flush=True)
        report["models"] = isolated(
            lambda: {
                "inference": bench_models.inference(5 if args.quick else 10, threads=1),
                # The embedded PostgreSQL (pgvector); clustered vectors are the target, uniform the worst case.
                "similar": bench_models.similar_embedded(10_000 if args.quick else 100_000),
            }
        )
    import bench_training

    if "training" not in skip:
        print("… training: driver memory over N and 4N images", file=sys.stderr, flush=True)
        report["training_memory"] = isolated(lambda: bench_training.driver_memory(1000 if args.quick else 3000))
    if args.imports_from:
        report["imports"] = {**json.loads(args.imports_from.read_text()), "measured_separately": str(args.imports_from)}
    elif "imports" not in skip:
        import bench_imports

        print("… bulk import throughput per worker core against the ingest floor", file=sys.stderr, flush=True)
        report["imports"] = isolated(
            lambda: bench_imports.run(1_000 if args.quick else 10_000, 50 if args.quick else 200)
        )
    if "journal" not in skip:
        import bench_s3_journal

        print("… the local S3 journal's start with 10,000 objects", file=sys.stderr, flush=True)
        report["s3_journal"] = isolated(
            lambda: bench_s3_journal.main(2_000 if args.quick else 10_000, 1 if args.quick else 3)
        )
    report["cost"] = cost_model(report)
    report["fargate"] = bench_training.fargate_model(
        report["pipeline"]["ingest"]["timings"]["ingest"]["cpu_ms"], report.get("dask")
    )
    report["runtime_s"] = round(time.perf_counter() - started, 1)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    import bench_report

    bench_report.write(report, OUT)
    print(f"wrote {OUT / 'report.md'} in {report['runtime_s']} s", file=sys.stderr)


if __name__ == "__main__":
    main()
