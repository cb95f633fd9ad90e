"""`pixelake COMMAND …`: upload, status, process, analyze, batch, import, train, models, stats.

Every command talks to one stage: `--api-url` (env PIXELAKE_API_URL, default the local stack)
with an API key (`--api-key`, env PIXELAKE_API_KEY) when the stage requires one.
Exit status: 0 done, 1 the API refused or the work failed, 3 the stage lacks the endpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from pixelake_cli import __version__
from pixelake_cli.client import DEFAULT_API_URL, ApiError, PixelakeClient
from pixelake_cli.upload import STATE_FILE, UploadState, upload_folder

EXIT_FAILED = 1
EXIT_MISSING = 3
POLL_S = 1.0


class Missing(Exception):
    """The stage has no such endpoint yet."""


def parse_param(text: str) -> tuple[str, Any]:
    """`name=value`; the value is JSON when it parses (numbers, true, lists), else a string."""
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"parameters are name=value, got {text!r}")
    try:
        return name, json.loads(raw)
    except ValueError:
        return name, raw


def collect_params(args) -> dict:
    params = json.loads(args.params) if getattr(args, "params", None) else {}
    params.update(dict(args.param or []))
    return params


def out(args, human: str, data: Any) -> None:
    print(json.dumps(data, indent=1, default=str) if args.json else human)


def call(action):
    """Turn a missing endpoint into `Missing` (a clear message, exit 3)."""
    try:
        return action()
    except ApiError as exc:
        if exc.endpoint_missing:
            raise Missing(str(exc)) from None
        raise


def progress_bar(total: float, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        disable=not enabled,
        dynamic_ncols=True,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}",
    )


# ---------------------------------------------------------------- commands


def cmd_upload(client: PixelakeClient, args) -> int:
    folder = Path(args.folder)
    if not folder.is_dir():
        print(f"{folder} is not a folder", file=sys.stderr)
        return EXIT_FAILED
    report = upload_folder(client, folder, workers=args.workers, show_progress=not args.no_progress)
    images = {}
    if args.wait and report.uploaded:
        images = client.wait_for_images(list(report.uploaded.values()), timeout=args.timeout)
    lines = [f"uploaded {len(report.uploaded)}, already there {len(report.skipped)}, failed {len(report.failed)}"]
    for name, image_id in sorted(report.uploaded.items()):
        status = images.get(image_id, {}).get("status", "uploaded")
        error = images.get(image_id, {}).get("error")
        lines.append(f"  {image_id:>8}  {status:<10} {name}" + (f"  ({error})" if error else ""))
    for name, reason in sorted(report.failed.items()):
        lines.append(f"  {'-':>8}  {'failed':<10} {name}: {reason}")
    out(
        args,
        "\n".join(lines),
        {
            "uploaded": report.uploaded,
            "skipped": report.skipped,
            "failed": report.failed,
            "images": {str(k): v for k, v in images.items()},
        },
    )
    failed_processing = any(image["status"] == "failed" for image in images.values())
    return EXIT_FAILED if report.failed or failed_processing else 0


def cmd_status(client: PixelakeClient, args) -> int:
    ids = list(args.image_ids)
    if args.folder:
        state = UploadState(Path(args.folder).resolve(), client.api_url)
        if not state.files:
            print(f"nothing uploaded from {args.folder} to {client.api_url} (no {STATE_FILE} entry)", file=sys.stderr)
            return EXIT_FAILED
        ids += [entry["image_id"] for entry in state.files.values()]
    images = (
        [client.get(f"api/images/{image_id}") for image_id in ids]
        if ids
        else client.get("api/images", limit=args.limit)["items"]
    )
    counts: dict[str, int] = {}
    lines = []
    for image in images:
        counts[image["status"]] = counts.get(image["status"], 0) + 1
        size = f"{image['width']}×{image['height']}" if image["width"] else ""
        lines.append(
            f"{image['id']:>8}  {image['status']:<10} {size:<11} {image['filename'] or ''}"
            + (f"  ({image['error']})" if image["error"] else "")
        )
    summary = ", ".join(f"{count} {status}" for status, count in sorted(counts.items())) or "no images"
    out(args, "\n".join([summary, *lines]), images)
    return 0


def _show_task(args, task: dict) -> int:
    result = task["result"] or {}  # free-form: the operation's, analyzer's or model's; `url` for an image output
    human = f"task {task['id']} {task['operation']}: {task['status']}"
    if task["duration_ms"] is not None:
        human += f" in {task['duration_ms']} ms"
    if task["error"]:
        human += f"\n  {task['error']}"
    if result:
        summary = {k: v for k, v in result.items() if k not in ("url",)}
        human += "\n" + json.dumps(summary, indent=1)[:4000]
        if result.get("url"):
            human += f"\n  result: {result['url']}"
    out(args, human, task)
    return EXIT_FAILED if task["status"] == "failed" else 0


def _submit(client: PixelakeClient, args, path: str, body: dict) -> int:
    task = client.post(path, body)
    if args.wait:
        task = client.wait_for_task(task["id"], timeout=args.timeout)
    code = _show_task(args, task)
    output = getattr(args, "output", None)
    url = (task["result"] or {}).get("url")
    if output and url:
        import requests

        response = requests.get(url, timeout=120)
        response.raise_for_status()
        Path(output).write_bytes(response.content)
        print(f"saved {output} ({len(response.content):,} bytes)", file=sys.stderr)
    return code


def cmd_process(client: PixelakeClient, args) -> int:
    return _submit(
        client,
        args,
        "api/process",
        {"image_id": args.image_id, "operation": args.operation, "params": collect_params(args)},
    )


def cmd_analyze(client: PixelakeClient, args) -> int:
    return _submit(
        client, args, "api/analyze", {"image_id": args.image_id, "model": args.model, "params": collect_params(args)}
    )


def cmd_operations(client: PixelakeClient, args) -> int:
    catalogue = client.get("api/operations")
    lines = []
    for title, entries in (
        ("operations (pixelake process)", catalogue["operations"]),
        ("analyzers (pixelake analyze)", catalogue["analyzers"]),
    ):
        lines.append(title)
        for entry in entries:
            params = ", ".join(
                f"{name}{'' if name in entry['params'].get('required', []) else '?'}:{schema.get('type')}"
                for name, schema in entry["params"]["properties"].items()
            )
            lines.append(
                f"  {entry['name']:<14} {entry['description'][:70]}"
                + (f"\n  {'':<14} params: {params}" if params else "")
            )
    out(args, "\n".join(lines), catalogue)
    return 0


JOB_FINISHED = ("succeeded", "failed", "cancelled", "completed_with_failures")


def _fraction(job: dict) -> tuple[float, str]:
    """(0..100, what it is doing) of a batch or a training job (chalicelib/api/responses.py:
    a batch's progress is {percent, finished} of its `total`, a training job's {percent, stage})."""
    progress = job["progress"]
    if "stage" in progress:  # a training job
        return float(progress["percent"]), str(progress["stage"] or job["status"])
    total = job["total"] if "total" in job else f"{job['listed']}{'' if job['listing_done'] else '+'}"  # an import
    return float(progress["percent"]), f"{job['status']}, {progress['finished']}/{total}"


def _follow(client: PixelakeClient, args, path: str, job: dict, what: str) -> dict:
    """Poll a job (batch, training) with a progress bar until it finishes."""
    bar = progress_bar(100, f"{what} {job['id']}", enabled=not args.no_progress and not args.json)
    deadline = time.monotonic() + args.timeout
    shown = 0.0
    while True:
        percent, stage = _fraction(job)
        bar.update(max(0.0, percent - shown))
        shown = max(shown, percent)
        bar.set_postfix_str(stage, refresh=True)
        if job["status"] in JOB_FINISHED or time.monotonic() > deadline:
            bar.close()
            return job
        time.sleep(POLL_S)
        job = client.get(f"{path}/{job['id']}")


def cmd_batch(client: PixelakeClient, args) -> int:
    if args.all:
        image_ids = [image["id"] for image in client.list_all("api/images", status="ready")]
    elif args.folder:
        image_ids = [
            entry["image_id"] for entry in UploadState(Path(args.folder).resolve(), client.api_url).files.values()
        ]
    else:
        image_ids = args.images
    if not image_ids:
        print("no images to run the batch on", file=sys.stderr)
        return EXIT_FAILED
    batch = call(
        lambda: client.post(
            "api/batches", {"operation": args.operation, "params": collect_params(args), "image_ids": image_ids}
        )
    )
    if not args.no_watch:
        batch = _follow(client, args, "api/batches", batch, "batch")
    counts = ", ".join(f"{batch[status]} {status}" for status in ("succeeded", "failed", "pending", "running"))
    human = f"batch {batch['id']} {batch['operation']}: {batch['status']} ({counts} of {batch['total']})"
    if batch["error"]:
        human += f"\n  {batch['error']}"
    out(args, human, batch)
    return EXIT_FAILED if batch["status"] == "failed" else 0


IMPORT_COUNTS = ("listed", "registered", "ready", "failed", "skipped")
FAILURES_SHOWN = 20


def cmd_import(client: PixelakeClient, args) -> int:
    """Import objects already in S3 (a prefix of your storage, or a manifest), following its
    progress; or cancel one (--cancel ID: the partitions running finish and are counted)."""
    if args.cancel is not None:
        if args.prefix:
            print("give a prefix or --cancel ID, not both", file=sys.stderr)
            return EXIT_FAILED
        return _import_report(client, args, call(lambda: client.post(f"api/imports/{args.cancel}/cancel")))
    if args.prefix and (args.manifest or args.manifest_key):
        print("give a prefix or a manifest, not both", file=sys.stderr)
        return EXIT_FAILED
    if args.manifest:
        body: dict[str, Any] = {"manifest": Path(args.manifest).read_text(encoding="utf-8")}
    elif args.manifest_key:
        body = {"manifest_key": args.manifest_key}
    elif args.prefix:
        body = {"prefix": args.prefix}
    else:
        print("give a prefix, --manifest FILE or --manifest-key KEY", file=sys.stderr)
        return EXIT_FAILED
    if args.inventory:
        body["format"] = "inventory"
        if args.columns:
            body["columns"] = args.columns
    job = call(lambda: client.post("api/imports", body))
    if not args.no_watch:
        job = _follow(client, args, "api/imports", job, "import")
    return _import_report(client, args, job)


def _import_report(client: PixelakeClient, args, job: dict) -> int:
    """An import's counts, error and first failed files."""
    counts = ", ".join(f"{job[name]} {name}" for name in IMPORT_COUNTS)
    lines = [f"import {job['id']}: {job['status']} ({counts})"]
    if job["error"]:
        lines.append(f"  {job['error']}")
    failures = client.get(f"api/imports/{job['id']}/failures", limit=FAILURES_SHOWN)["items"] if job["failed"] else []
    lines += [f"  failed  {failure['key']}: {failure['reason']}" for failure in failures]
    if job["failed"] > len(failures):
        lines.append(f"  … and {job['failed'] - len(failures)} more (GET /api/imports/{job['id']}/failures)")
    out(args, "\n".join(lines), {**job, "failures": failures})
    return EXIT_FAILED if job["status"] in ("failed", "completed_with_failures") else 0


def confusion_text(confusion: dict) -> str:
    labels = [str(label) for label in confusion.get("labels", [])]
    matrix = confusion.get("matrix", [])
    width = max([len(label) for label in labels] + [len(str(v)) for row in matrix for v in row] + [4])
    lines = ["true \\ predicted", " " * (width + 1) + " ".join(label.rjust(width) for label in labels)]
    for label, row in zip(labels, matrix):
        lines.append(label.rjust(width) + " " + " ".join(str(v).rjust(width) for v in row))
    return "\n".join(lines)


def cmd_train(client: PixelakeClient, args) -> int:
    body = {
        "dataset_id": args.dataset,
        "model_name": args.model_name,
        "algorithm": args.algorithm,
        "params": collect_params(args),
    }
    if args.features:
        body["features"] = args.features
    job = call(lambda: client.post("api/training-jobs", body))
    if not args.no_watch:
        job = _follow(client, args, "api/training-jobs", job, "training job")
    lines = [f"training job {job['id']} ({job['model_name']}): {job['status']}"]
    if job["model"]:
        lines.append(f"  registered model {job['model']['name']} version {job['model']['version']}")
    if job["error"]:
        lines.append(f"  {job['error']}")
    metrics = job["metrics"]
    for name, value in metrics.items():
        if isinstance(value, (int, float)):
            lines.append(f"  {name:<20} {value:.4f}" if isinstance(value, float) else f"  {name:<20} {value}")
    if isinstance(metrics.get("confusion_matrix"), dict):
        lines.append(confusion_text(metrics["confusion_matrix"]))
    out(args, "\n".join(lines), job)
    return EXIT_FAILED if job["status"] == "failed" else 0


def _model_line(entry: dict) -> str:
    """One name of GET /api/models: its latest version and what its active version is."""
    active = entry["active"]
    about = (
        f"{active['framework']:<8} {active['task']:<15} active v{active['version']}" if active else "no active version"
    )
    return f"{entry['name']:<24} v{entry['latest_version']!s:<4} {about}"


def cmd_models(client: PixelakeClient, args) -> int:
    if args.models_command == "list":
        models = call(lambda: client.get("api/models"))["items"]
        out(args, "\n".join(_model_line(m) for m in models) or "no models registered", models)
        return 0
    if args.models_command == "show":
        model = call(lambda: client.get(f"api/models/{args.name}"))
        lines = [model["name"]]
        for version in model["versions"]:
            lines.append(
                f"  v{version['version']}  {version['framework']}  {version['task']}  "
                f"{version['status']}  sha256 {version['sha256'][:12]}"
            )
        out(args, "\n".join(lines), model)
        return 0
    fields = {"name": args.name, "framework": args.framework, "task": args.task}
    if args.description:
        fields["description"] = args.description
    if args.labels:
        fields["labels"] = args.labels
    if args.url:
        model = call(lambda: client.post("api/models", {**fields, "url": args.url}))
    else:
        path = Path(args.file)
        # The API takes the file and its description as two parts: `file` and the JSON `metadata`.
        with path.open("rb") as stream:
            model = call(
                lambda: client.request(
                    "POST",
                    "api/models",
                    data={"metadata": json.dumps(fields)},
                    files={"file": (path.name, stream, "application/octet-stream")},
                )
            )
    out(args, f"registered {model['name']} version {model['version']}", model)
    return 0


def cmd_stats(client: PixelakeClient, args) -> int:
    stats = client.get("api/stats")
    lines = ["images: " + ", ".join(f"{count} {status}" for status, count in stats["images"].items())]
    if stats["tasks"]:
        lines.append(f"{'operation':<16} {'status':<10} {'count':>6} {'p50 ms':>8} {'p95 ms':>8}")
        for row in stats["tasks"]:
            p50 = "" if row["p50_duration_ms"] is None else f"{row['p50_duration_ms']:.0f}"
            p95 = "" if row["p95_duration_ms"] is None else f"{row['p95_duration_ms']:.0f}"
            lines.append(f"{row['operation']:<16} {row['status']:<10} {row['count']:>6} {p50:>8} {p95:>8}")
    for day in stats["per_day"][:14]:
        lines.append(f"{day['day']}  {day['tasks']} tasks")
    out(args, "\n".join(lines), stats)
    return 0


# ---------------------------------------------------------------- arguments


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pixelake", description="Pixelake from the command line.")
    parser.add_argument("--version", action="version", version=f"pixelake {__version__}")
    parser.add_argument(
        "--api-url",
        default=os.environ.get("PIXELAKE_API_URL", DEFAULT_API_URL),
        help="the stage's API (env PIXELAKE_API_URL; default %(default)s)",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("PIXELAKE_API_KEY"),
        help="API key, sent as X-API-Key (env PIXELAKE_API_KEY)",
    )
    parser.add_argument("--json", action="store_true", help="print the API's JSON instead of text")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_params(sub):
        sub.add_argument(
            "-p",
            "--param",
            action="append",
            type=parse_param,
            metavar="NAME=VALUE",
            help="a parameter (repeatable); values are JSON when they parse",
        )
        sub.add_argument("--params", help="all parameters as one JSON object")

    def with_watch(sub):
        sub.add_argument("--no-watch", action="store_true", help="return once submitted")
        sub.add_argument("--no-progress", action="store_true", help="no progress bar")
        sub.add_argument("--timeout", type=float, default=3600, help="stop watching after this many seconds")

    upload = commands.add_parser("upload", help="upload a folder's images (parallel, presigned, resumable)")
    upload.add_argument("folder")
    upload.add_argument("--workers", type=int, default=4, help="files uploaded at once (default %(default)s)")
    upload.add_argument("--wait", action="store_true", help="wait until every image is processed")
    upload.add_argument("--timeout", type=float, default=600)
    upload.add_argument("--no-progress", action="store_true")
    upload.set_defaults(run=cmd_upload)

    status = commands.add_parser("status", help="images' status: by id, from an uploaded folder, or the newest")
    status.add_argument("image_ids", nargs="*", type=int)
    status.add_argument("--folder", help="the images uploaded from this folder")
    status.add_argument("--limit", type=int, default=20)
    status.set_defaults(run=cmd_status)

    for name, target, help_text, run in (
        ("process", "operation", "run an operation on an image", cmd_process),
        ("analyze", "model", "analyze an image with an analyzer or a model", cmd_analyze),
    ):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("image_id", type=int)
        sub.add_argument(target)
        with_params(sub)
        sub.add_argument("--wait", action="store_true", help="wait for the result")
        sub.add_argument("--timeout", type=float, default=600)
        if name == "process":
            sub.add_argument("-o", "--output", help="save the result image here (implies --wait)")
        sub.set_defaults(run=run)

    operations = commands.add_parser("operations", help="list operations and analyzers with their parameters")
    operations.set_defaults(run=cmd_operations)

    batch = commands.add_parser("batch", help="run an operation on many images, with live progress")
    batch.add_argument("operation")
    chosen = batch.add_mutually_exclusive_group(required=True)
    chosen.add_argument(
        "--images", type=lambda s: [int(v) for v in s.split(",") if v], help="image ids, comma-separated"
    )
    chosen.add_argument("--folder", help="the images uploaded from this folder")
    chosen.add_argument("--all", action="store_true", help="every ready image")
    with_params(batch)
    with_watch(batch)
    batch.set_defaults(run=cmd_batch)

    imports = commands.add_parser(
        "import", help="register and ingest images already in S3 (a prefix of your storage, or a manifest)"
    )
    imports.add_argument(
        "prefix", nargs="?", help="a prefix of your storage: uploads/<your id>/… or datasets/<your id>/…"
    )
    imported = imports.add_mutually_exclusive_group()
    imported.add_argument("--manifest", metavar="FILE", help="a CSV of keys (or an S3 Inventory CSV) on this machine")
    imported.add_argument("--manifest-key", metavar="KEY", help="a manifest already in S3 (.csv or .csv.gz)")
    imported.add_argument(
        "--cancel", type=int, metavar="ID", help="cancel import ID (the partitions running finish and are counted)"
    )
    imports.add_argument("--inventory", action="store_true", help="the manifest is an S3 Inventory CSV")
    imports.add_argument("--columns", help="the inventory's columns (its manifest.json fileSchema)")
    with_watch(imports)
    imports.set_defaults(run=cmd_import)

    train = commands.add_parser("train", help="train a classifier on a dataset, with live progress")
    train.add_argument("--dataset", type=int, required=True, help="dataset id")
    train.add_argument("--model-name", required=True)
    train.add_argument("--algorithm", default="logistic_regression")
    train.add_argument("--features", help="feature extractor (hog, color_histogram, pixels)")
    with_params(train)
    with_watch(train)
    train.set_defaults(run=cmd_train)

    models = commands.add_parser("models", help="the model registry: list, show, register")
    models_commands = models.add_subparsers(dest="models_command", required=True)
    models_commands.add_parser("list", help="registered models")
    show = models_commands.add_parser("show", help="one model with its versions")
    show.add_argument("name")
    register = models_commands.add_parser("register", help="register a model from a file or a URL")
    register.add_argument("name")
    source = register.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", help="an ONNX file (or a skops file) on this machine")
    source.add_argument("--url", help="a URL the API fetches the artifact from")
    register.add_argument("--framework", default="onnx", choices=["onnx", "sklearn"])
    register.add_argument("--task", default="classification")
    register.add_argument("--description")
    register.add_argument(
        "--labels", type=lambda s: [v for v in s.split(",") if v], help="class labels, comma-separated"
    )
    models.set_defaults(run=cmd_models)

    stats = commands.add_parser("stats", help="processing statistics")
    stats.set_defaults(run=cmd_stats)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "output", None):
        args.wait = True
    client = PixelakeClient(args.api_url, api_key=args.api_key)
    try:
        return args.run(client, args)
    except Missing as exc:
        print(
            f"pixelake: {args.command} is not available on {args.api_url} yet (the API has no such endpoint: {exc})",
            file=sys.stderr,
        )
        return EXIT_MISSING
    except ApiError as exc:
        print(f"pixelake: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("\npixelake: interrupted (an upload can be resumed by running it again)", file=sys.stderr)
        return 130
