"""Jobs that run on the Dask cluster: training, batches, imports, exports.

Each is submitted by the API fire-and-forget and does its own bookkeeping: it reads its row,
fans out over partitions from inside the worker (`worker_client`, so the driver does not
hold a worker thread while its partitions run), and writes progress, results and failures
to PostgreSQL and S3. Workers import this same chalicelib code.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from chalicelib import storage
from chalicelib.config import get_settings
from chalicelib.db import datasets as dataset_rows
from chalicelib.db import jobs as job_rows
from chalicelib.db import transitions
from chalicelib.db.session import session_scope
from chalicelib.logs import log_context
from chalicelib.metrics import job_progress

log = logging.getLogger("pixelake.jobs")

FEATURES_SHARE = 75  # percent of a training job's progress bar spent extracting features


class JobCancelled(Exception):
    pass


def _with_log_context(id_name: str):
    """Every log line of the job carries its id (job_id or batch_id), as a request's carry theirs.
    functools.wraps keeps the name, so Dask still pickles the job by reference."""

    def decorate(job):
        @functools.wraps(job)
        def run(ident: int) -> str:
            with log_context(**{id_name: ident}):
                return job(ident)

        return run

    return decorate


def read_object(bucket: str, key: str) -> bytes:
    """Module-level (picklable with functools.partial) reader for Dask workers."""
    return storage.get(key, bucket=bucket)


def _progress(job_id: int, percent: int, stage: str) -> None:
    job_progress("training", percent, job_id=job_id)
    with session_scope() as session:
        if (
            transitions.job_progress(transitions.on_session(session), job_id, progress=percent, stage=stage)
            == "cancelled"
        ):
            raise JobCancelled()


# --- training jobs -----------------------------------------------------------------------------


def write_shard(bucket: str, owner_id: int, job_id: int, index: int, data: bytes) -> None:
    """Module-level (picklable with functools.partial) shard writer for Dask workers."""
    storage.put(
        storage.training_shard_key(owner_id, job_id, index), data, "application/vnd.apache.parquet", bucket=bucket
    )


def _item_chunks(dataset_id: int, size: int):
    """The dataset's (key, label) items in chunks of `size`, read page by page as they are needed."""
    after = 0
    while True:
        with session_scope() as session:
            page = dataset_rows.items_page(session, dataset_id, after_id=after, limit=size)
        if not page:
            return
        after = page[-1][0]
        yield [(key, label) for _, key, label in page]


def _backbone(owner_id: int, feature_params: dict):
    """The `embedding` feature's backbone version (the one resolved when the job was created), its
    artifact in this machine's model cache, and the feature parameters with its vector length."""
    from chalicelib.db import ml_models
    from chalicelib.errors import InvalidRequest
    from chalicelib.services.model_runs import ModelArtifact, artifact_file

    with session_scope() as session:
        row = ml_models.with_artifact(session, owner_id, feature_params["model"], feature_params["sha256"] or "")
        if row is None:
            raise InvalidRequest(f"the backbone {feature_params['model']!r} version the job was created with is gone")
        backbone = ModelArtifact(
            row.id, row.name, row.version, row.framework, row.task, row.artifact_key, row.sha256, row.input_spec, []
        )
    path = artifact_file(backbone)
    from PIL import Image

    from chalicelib.ml.onnx_runtime import OrtModel

    probe = Image.new("RGB", tuple(backbone.input_spec.get("size") or (224, 224)), (128, 128, 128))
    dimensions = int(OrtModel(path, backbone.input_spec, sha256=backbone.sha256).embed(probe, False).size)
    return backbone, {**feature_params, "dimensions": dimensions}


@_with_log_context("job_id")
def run_training_job(job_id: int) -> str:
    """Extract features into Parquet shards on the workers, fit incrementally or on a bounded
    sample, evaluate on the held-out items shard by shard, save, register. However it ends, the
    job's shards are deleted before its row says so: nothing reads them afterwards."""
    from chalicelib.errors import InvalidRequest
    from chalicelib.ml.distributed import describe_failure

    with session_scope() as session:
        spec = transitions.job_running(transitions.on_session(session), job_id)
        if spec is None:
            return "skipped"
        total = sum(dataset_rows.label_counts(session, spec["dataset_id"]).values())
    finish: dict[str, Any] | None = None  # None: cancelled (the cancel wrote the row)
    try:
        finish = {"status": "succeeded", **_train(job_id, spec, total)}
    except JobCancelled:
        pass
    except InvalidRequest as exc:
        finish = {"status": "failed", "error": str(exc)}
    except Exception as exc:  # the job records why it failed; nothing is left running
        log.exception("training job %s failed", job_id)
        finish = {"status": "failed", "error": describe_failure(exc)}
    delete_shards(spec["owner_id"], job_id)
    if finish is None:
        return "cancelled"
    with session_scope() as session:
        transitions.job_finished(transitions.on_session(session), job_id, **finish)
    return finish["status"]


def delete_shards(owner_id: int, job_id: int) -> None:
    """The job's feature shards, gone. A failure to delete only logs: the bucket's lifecycle rule
    on training/ expires what is left (infra/aws/storage.yaml), as it does for a job whose driver
    died, or a shard a partition still running at a cancel wrote after this."""
    prefix = storage.training_job_prefix(owner_id, job_id)
    try:
        deleted = storage.delete_under(prefix)
    except Exception:
        log.warning(
            "training job %s: its shards under %s are left to the lifecycle rule", job_id, prefix, exc_info=True
        )
    else:
        log.info("training job %s: deleted its %d shard(s) under %s", job_id, deleted, prefix)


def _train(job_id: int, spec: dict, total: int) -> dict:
    """The job's work, from features to a registered model: its metrics and model id."""
    from distributed import worker_client

    from chalicelib.ml.distributed import decode_shard, extract_feature_shards, shard_items
    from chalicelib.ml.training import train_from_shards

    feature_params = spec["params"].get("feature_params") or {}
    algorithm_params = spec["params"].get("algorithm_params") or {}
    backbone = prepare = None
    if spec["features"] == "embedding":
        backbone, feature_params = _backbone(spec["owner_id"], feature_params)
        from chalicelib.services.model_runs import artifact_file

        prepare = functools.partial(artifact_file, backbone)

    def on_progress(done: int, total: int) -> None:
        _progress(job_id, round(FEATURES_SHARE * done / max(total, 1)), "features")

    bucket, owner = get_settings().bucket, spec["owner_id"]
    with worker_client() as client:
        shards = extract_feature_shards(
            client,
            _item_chunks(spec["dataset_id"], shard_items(client, total)),
            total=total,
            load_bytes=functools.partial(read_object, bucket),
            write_shard=functools.partial(write_shard, bucket, owner, job_id),
            feature=spec["features"],
            params=feature_params,
            prepare=prepare,
            on_progress=on_progress,
        )
    _progress(job_id, FEATURES_SHARE + 5, "training")
    outcome = train_from_shards(
        shards.counts(),
        lambda index: decode_shard(storage.get(storage.training_shard_key(owner, job_id, index))),
        algorithm=spec["algorithm"],
        params=algorithm_params,
        test_size=spec["test_size"],
        seed=spec["seed"],
        fit=spec["params"].get("fit"),
    )
    _progress(job_id, 95, "saving")
    metrics = {
        **outcome.metrics,
        "items": shards.items,
        "failed_items": shards.failed,
        "failed_examples": [{"key": k, "reason": r} for k, r in shards.failed_examples],
        "warnings": list(outcome.warnings),
        # where the shards were written (deleted when the job ended) and how many
        "shards": {"prefix": storage.training_job_prefix(owner, job_id) + "features/", "count": len(shards.shards)},
    }
    model_id = register_trained_model(spec, job_id, outcome, metrics, feature_params, backbone)
    return {"metrics": metrics, "model_id": model_id}


def _backbone_and_head(backbone, outcome, feature_params: dict) -> tuple[bytes, dict]:
    """One ONNX classifier, the backbone then the trained head, and its input spec checked
    against the joined graph as a registration checks it."""
    from chalicelib.ml.model_spec import check_graph, validate_input_spec
    from chalicelib.ml.onnx_export import compose_with_backbone, export_sklearn, opset_of
    from chalicelib.ml.onnx_graph import signature
    from chalicelib.services.model_runs import artifact_file

    data = artifact_file(backbone).read_bytes()
    head = export_sklearn(outcome.model, feature_params["dimensions"], opset=opset_of(data))
    joined = compose_with_backbone(data, head, normalize=feature_params["normalize"])
    spec = validate_input_spec({**backbone.input_spec, "output": "probabilities"}, size_optional=True)
    return joined, check_graph(signature(joined), spec, "classify", outcome.labels).to_dict()


def register_trained_model(spec: dict, job_id: int, outcome, metrics: dict, feature_params: dict, backbone=None) -> int:
    """The trained model as a new version: a skops classifier on its feature, or (the `embedding`
    feature) one ONNX model running the backbone and the head in one task."""
    from chalicelib.db import ml_models
    from chalicelib.ml.training import save_model
    from chalicelib.services.model_exports import EXPORTED, ONNX_CONTENT_TYPE, trained_export

    if backbone is None:
        framework, extension, artifact = "sklearn", "skops", save_model(outcome.model)
        input_spec = {"feature": spec["features"], "feature_params": feature_params}
        # for GET /api/models/{name}/versions/{v}/onnx
        onnx, metrics["onnx_export"] = trained_export(artifact)
    else:
        onnx, metrics["onnx_export"] = None, EXPORTED  # the model itself is the ONNX file
        framework, extension = "onnx", "onnx"
        artifact, input_spec = _backbone_and_head(backbone, outcome, feature_params)
        metrics = {
            **metrics,
            "backbone": {"name": backbone.name, "version": backbone.version, "sha256": backbone.sha256},
        }
    sha256 = hashlib.sha256(artifact).hexdigest()
    owner, name = spec["owner_id"], spec["model_name"]
    with session_scope() as session:
        version = ml_models.allocate_version(session, owner, name)
        model = ml_models.create(
            session,
            owner_id=owner,
            name=name,
            version=version,
            framework=framework,
            task="classify",
            artifact_key=storage.model_key(owner, name, version, extension),
            sha256=sha256,
            size_bytes=len(artifact),
            input_spec=input_spec,
            labels=outcome.labels,
            metrics=metrics,
            description=f"trained by training job {job_id}",
            training_job_id=job_id,
        )
        storage.put(model.artifact_key, artifact, "application/octet-stream")
        if onnx is not None:
            storage.put(storage.model_export_key(owner, name, version), onnx, ONNX_CONTENT_TYPE)
        return model.id


# A batch is dispatched in passes over its unfinished tasks; a pass that ends with tasks still open
# (a partition lost with its worker more often than the scheduler retries it) is followed by
# another, and after the last one the tasks still open fail with the reason.
BATCH_PASSES = 3


@dataclass(frozen=True)
class DispatchReport:
    partitions: int  # partitions that completed (with or without an error)
    lost: list[str]  # why each partition that raised was lost
    stopped: bool  # the batch was cancelled (or finished elsewhere) during the pass


# The tasks of a prefix or a dataset are made by the batch's driver in chunks of this many, each one
# INSERT … SELECT (seconds at most: no statement outlasts the database connection's 10 s timeout).
TASK_CHUNK = 25_000


def make_tasks(batch_id: int, *, chunk: int = TASK_CHUNK) -> int:
    """Make the tasks of a prefix's or a dataset's batch, in image id order, `chunk` per statement
    and transaction, up to the `total` counted at creation; resumable (it starts after the largest
    image id made) and stopped by a cancel. Returns how many tasks the batch has."""
    from sqlalchemy import func, update

    from chalicelib.db.tables import BATCH_COUNTED_STATUSES, Batch, User

    with session_scope() as session:
        batch = session.get_one(Batch, batch_id)
        if batch.tasks_made_at is not None or not {"prefix", "dataset_id"} & batch.source.keys():
            return batch.total
        owner = session.get_one(User, batch.owner_id)
        query, column = job_rows.source_images(batch.source, None if owner.role == "admin" else owner.id)
        after = job_rows.tasks_made_through(session, batch_id)
    while True:
        with session_scope() as session:
            batch = session.get_one(Batch, batch_id)
            left = batch.total - sum(job_rows.batch_counts(batch).values())
            if batch.status != "running" or left <= 0:
                break
            count, last = job_rows.add_batch_tasks(
                session,
                batch,
                query.where(column > after).order_by(column).limit(min(chunk, left)),
                kind=batch.task_kind,
                params=batch.params,
                model_id=batch.model_id,
            )
        if not count or last is None:
            break
        after = last
    with session_scope() as session:  # the total is what was made (images deleted meanwhile are not)
        made = sum(getattr(Batch, f"tasks_{status}") for status in BATCH_COUNTED_STATUSES)
        session.execute(update(Batch).where(Batch.id == batch_id).values(total=made, tasks_made_at=func.now()))
        return session.get_one(Batch, batch_id).total


def run_batch_partition(task_ids: list[int]) -> dict[str, int]:
    """Runs on a worker: each task once (a finished task is skipped, so a retried partition only
    runs what is left); returns how many ended how. A task whose run raised (a transient fault)
    is failed with the reason here, not shipped back to the driver."""
    from chalicelib.db import direct
    from chalicelib.ml.distributed import describe_failure
    from chalicelib.services.task_runs import execute

    outcomes: dict[str, int] = {}
    for task_id in task_ids:
        try:
            outcome = execute(task_id)
        except Exception as exc:  # the task records why; the partition goes on
            with direct.transaction() as db:
                transitions.task_failed(db, task_id, describe_failure(exc))
            outcome = "failed"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


def open_task_pages(batch_id: int, size: int) -> Iterator[list[int]]:
    """The batch's unfinished task ids, `size` at a time, by keyset pages (each read as it is needed)."""
    after = 0
    while True:
        with session_scope() as session:
            page = job_rows.open_task_page(session, batch_id, after_id=after, limit=size)
        if not page:
            return
        yield page
        after = page[-1]


def _batch_status(batch_id: int) -> tuple[str, dict[str, int]]:
    from chalicelib.db.tables import Batch

    with session_scope() as session:
        batch = session.get(Batch, batch_id)
        return (batch.status, job_rows.batch_counts(batch)) if batch is not None else ("cancelled", {})


def dispatch_batch(
    client,
    batch_id: int,
    partition_fn: Callable[[list[int]], Any] = run_batch_partition,
    *,
    partition_size: int,
    max_in_flight: int,
    attempt: int = 1,
) -> DispatchReport:
    """One pass over the batch's unfinished tasks: keyset pages of `partition_size` task ids
    submitted as partitions, at most `max_in_flight` at a time, so the driver's memory does not
    grow with the batch. Progress is read from the batch's counters as partitions complete; a
    cancel stops the submissions."""
    from chalicelib.ml.distributed import run_partitions

    done, lost, stopped, percent = 0, [], False, -1

    def should_stop() -> bool:
        nonlocal stopped, percent
        status, counts = _batch_status(batch_id)
        if total := sum(counts.values()):
            finished = counts["succeeded"] + counts["failed"] + counts["cancelled"]
            if (now := round(100 * finished / total)) != percent:  # at most ~100 points per batch
                percent = now
                job_progress("batch", percent, batch_id=batch_id)
        stopped = status != "running"
        return stopped

    for partition, result in run_partitions(
        client,
        open_task_pages(batch_id, partition_size),
        partition_fn,
        max_in_flight=max_in_flight,
        key=lambda ids: f"batch-{batch_id}-pass-{attempt}-tasks-{ids[0]}-{ids[-1]}",
        should_stop=should_stop,
    ):
        done += 1
        if isinstance(result, BaseException):
            log.warning("batch %s: partition of tasks %s..%s lost: %s", batch_id, partition[0], partition[-1], result)
            lost.append(f"{type(result).__name__}: {result}")
    return DispatchReport(done, lost, stopped)


def batch_in_flight(client) -> int:
    """Partitions in flight: PIXELAKE_BATCH_IN_FLIGHT, or two per worker thread of the cluster."""
    configured = get_settings().batch_in_flight
    return configured or max(2, 2 * sum(client.nthreads().values()))


@_with_log_context("batch_id")
def run_batch_job(batch_id: int) -> str:
    """Run the batch's unfinished tasks in partitions; each task records its own outcome.

    The tasks of a prefix or a dataset are made first, in chunks (make_tasks).
    Resumable: run again (resubmitted, or rescheduled by Dask after its worker died), it makes the
    tasks not yet made and runs only those not yet finished. Cancelled, it stops; its tasks of no
    live attempt end cancelled so the counts add up."""
    from distributed import worker_client

    with session_scope() as session:
        if not transitions.batch_running(transitions.on_session(session), batch_id):
            return "skipped"
    make_tasks(batch_id)  # a prefix's or a dataset's tasks, in chunks (resumed where a lost driver stopped)
    size = get_settings().batch_partition_size
    status, report = "running", DispatchReport(0, [], False)
    with worker_client() as client:
        in_flight = batch_in_flight(client)
        for attempt in range(1, BATCH_PASSES + 1):
            report = dispatch_batch(client, batch_id, partition_size=size, max_in_flight=in_flight, attempt=attempt)
            with session_scope() as session:
                status = transitions.batch_finished(transitions.on_session(session), batch_id)
            if status != "running" or report.stopped:
                break
    with session_scope() as session:
        db = transitions.on_session(session)
        if status == "cancelled":
            transitions.batch_leftovers_cancelled(db, batch_id)
        elif status == "running":  # tasks still open after the last pass
            reason = f"no attempt finished it in {BATCH_PASSES} passes" + (
                f" (last: {report.lost[-1]})" if report.lost else ""
            )
            transitions.batch_open_tasks_failed(db, batch_id, reason)
            status = transitions.batch_finished(db, batch_id)
    return status


@_with_log_context("import_id")
def run_import_job(import_id: int) -> str:
    """List the import's objects and ingest them in partitions (chalicelib/services/import_runs.py)."""
    from chalicelib.services.import_runs import run_import

    return run_import(import_id)


def export_batch(batch_id: int) -> str:
    """Write the batch's results as Hive-partitioned Parquet under exports/ (chalicelib/services/exports.py)."""
    from chalicelib.services.exports import export_batch as write_batch_export

    return write_batch_export(batch_id)
