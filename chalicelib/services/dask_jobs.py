"""Jobs that run on the Dask cluster: training, batches, exports.

Each is submitted by the API fire-and-forget and does its own bookkeeping: it reads its row,
fans out over partitions from inside the worker (`worker_client`, so the driver does not
hold a worker thread while its partitions run), and writes progress, results and failures
to PostgreSQL and S3. Workers import this same chalicelib code.
"""

from __future__ import annotations

import functools
import hashlib
import logging

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
    sample, evaluate on the held-out items shard by shard, save, register."""
    from distributed import worker_client

    from chalicelib.errors import InvalidRequest
    from chalicelib.ml.distributed import decode_shard, describe_failure, extract_feature_shards, shard_items
    from chalicelib.ml.training import train_from_shards

    with session_scope() as session:
        spec = transitions.job_running(transitions.on_session(session), job_id)
        if spec is None:
            return "skipped"
        total = sum(dataset_rows.label_counts(session, spec["dataset_id"]).values())
    try:
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
            "shards": {"prefix": storage.training_job_prefix(owner, job_id) + "features/", "count": len(shards.shards)},
        }
        model_id = register_trained_model(spec, job_id, outcome, metrics, feature_params, backbone)
        with session_scope() as session:
            transitions.job_finished(
                transitions.on_session(session), job_id, "succeeded", metrics=metrics, model_id=model_id
            )
        return "succeeded"
    except JobCancelled:
        return "cancelled"
    except InvalidRequest as exc:
        reason = str(exc)
    except Exception as exc:  # the job records why it failed; nothing is left running
        log.exception("training job %s failed", job_id)
        reason = describe_failure(exc)
    with session_scope() as session:
        transitions.job_finished(transitions.on_session(session), job_id, "failed", error=reason)
    return "failed"


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

    if backbone is None:
        framework, extension, artifact = "sklearn", "skops", save_model(outcome.model)
        input_spec = {"feature": spec["features"], "feature_params": feature_params}
    else:
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
        return model.id


def run_batch_item(task_id: int) -> str:
    from chalicelib.services.task_runs import execute

    return execute(task_id)


@_with_log_context("batch_id")
def run_batch_job(batch_id: int) -> str:
    """Run the batch's unfinished tasks in partitions; each task records its own outcome."""
    from distributed import worker_client

    from chalicelib.ml.distributed import default_partitions, run_batch

    with session_scope() as session:
        if not transitions.batch_running(transitions.on_session(session), batch_id):
            return "skipped"
        task_ids = job_rows.pending_batch_tasks(session, batch_id)
    with worker_client() as client:
        for done, outcome in enumerate(
            run_batch(client, task_ids, run_batch_item, default_partitions(client, len(task_ids))), 1
        ):
            if done % max(1, len(task_ids) // 20) == 0:  # about twenty points per batch
                job_progress("batch", round(100 * done / len(task_ids)), batch_id=batch_id)
            if not outcome.ok:  # a transient fault the task could not record itself
                with session_scope() as session:
                    transitions.task_failed(
                        transitions.on_session(session), outcome.item, outcome.error or "the task could not run"
                    )
    with session_scope() as session:
        return transitions.batch_finished(transitions.on_session(session), batch_id)


def export_batch(batch_id: int) -> str:
    """Write the batch's results as Hive-partitioned Parquet under exports/ (chalicelib/services/exports.py)."""
    from chalicelib.services.exports import export_batch as write_batch_export

    return write_batch_export(batch_id)
