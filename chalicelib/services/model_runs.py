"""Run a registered model on one image, in a worker: fetch and verify its artifact, load it once
per container, predict.

Three functions run this, each fed by its own queue (`resolver.queue_for`): ONNX models (framework
`onnx`) on onnxruntime in the inference function (`inference`; numpy + Pillow + onnxruntime, no
OpenCV); models registered as framework `opencv` on cv2.dnn in the imaging worker (`tasks`);
scikit-learn models in the ml worker (`ml-tasks`; skops, scikit-learn and chalicelib.ml.features).
The Dask workers run all three.

The artifact is cached under <tmp_dir>/models/<sha256> and checked on every task (a stat, and
a re-hash when the file changed): a corrupt or tampered copy is deleted and downloaded again,
and a download whose bytes do not match the registered sha256 fails the task.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chalicelib import metrics, storage
from chalicelib.config import get_settings
from chalicelib.db.direct import ResultRow, analysis_result

if TYPE_CHECKING:
    from chalicelib.ml.onnx_runtime import OrtModel
    from chalicelib.ml.runtimes import ModelOutput, OnnxModel, SklearnModel

    Runtime = OnnxModel | OrtModel | SklearnModel

# Loaded models kept per container, least recently used evicted first: a warm worker serves a
# few models without reloading them, and a hundred models do not fill its memory.
MAX_LOADED_MODELS = 4


@dataclass(frozen=True)
class ModelArtifact:
    """What a worker needs to run one model version (a copy of its row)."""

    id: int
    name: str
    version: int
    framework: str
    task: str
    artifact_key: str
    sha256: str
    input_spec: dict
    labels: list


_loaded: collections.OrderedDict[tuple[str, int], Any] = collections.OrderedDict()
_lock = threading.Lock()


def artifact_file(model: ModelArtifact) -> Path:
    """The verified local copy of the model's artifact, downloaded when missing or corrupt.

    Raises ArtifactMismatch when the stored object's bytes are not the registered ones.
    """
    from chalicelib.ml.artifacts import cached_artifact, store_artifact

    path = cached_artifact(model.sha256)
    if path is None:
        path = store_artifact(storage.get(model.artifact_key), model.sha256)
    return path


def load(model: ModelArtifact, path: Path) -> Runtime:
    labels = list(model.labels) or None
    if model.framework == "sklearn":
        from chalicelib.ml.runtimes import SklearnModel

        return SklearnModel.load(
            path, labels, feature=model.input_spec.get("feature"), feature_params=model.input_spec.get("feature_params")
        )
    if model.framework == "opencv":
        from chalicelib.ml.runtimes import OnnxModel

        return OnnxModel(path, model.input_spec, labels)
    from chalicelib.ml.onnx_runtime import OrtModel

    return OrtModel(path, model.input_spec, labels, sha256=model.sha256)


def loaded_model(model: ModelArtifact) -> Runtime:
    """The model ready to run, loaded once per container (keyed by artifact and version)."""
    path = artifact_file(model)
    key = (model.sha256, model.id)
    with _lock:
        if key in _loaded:
            _loaded.move_to_end(key)
            return _loaded[key]
    runtime = load(model, path)
    with _lock:
        _loaded[key] = runtime
        while len(_loaded) > MAX_LOADED_MODELS:
            (evicted_sha256, _), _ = _loaded.popitem(last=False)
            if not any(sha == evicted_sha256 for sha, _ in _loaded):
                from chalicelib.ml.onnx_runtime import forget_session

                forget_session(evicted_sha256)
    return runtime


def run(model: ModelArtifact, data: bytes, params: dict, *, task_id: int, bucket: str | None = None) -> ResultRow:
    """The result row of one run on one image: predictions best first (the top one lifted out),
    segmentation classes with the mask stored under results/, or an embedding's summary with the
    vector stored for similarity search."""
    from chalicelib.imaging.analyzers import AnalysisInput
    from chalicelib.ml.runtimes import run_model

    runtime = loaded_model(model)
    source = AnalysisInput.from_bytes(data, max_pixels=get_settings().max_pixels)
    started = time.perf_counter()
    output = run_model(runtime, model.task, source, params)
    metrics.model_inference(model.framework, (time.perf_counter() - started) * 1000)
    body = {**output.body, "model": {"name": model.name, "version": model.version}}
    result = analysis_result(body, kind="prediction")
    if output.mask is not None:
        store_mask(result, output, task_id, bucket)
    if output.embedding is not None:
        from chalicelib.db import direct, embeddings

        with direct.transaction() as db:
            embeddings.store(db, task_id, output.embedding)
    return result


def store_mask(result: ResultRow, output: ModelOutput, task_id: int, bucket: str | None) -> None:
    """Put the class map as a grayscale PNG (pixel value = class id) beside the result."""
    import io

    from PIL import Image

    assert output.mask is not None
    buffer = io.BytesIO()
    Image.fromarray(output.mask, "L").save(buffer, "PNG", optimize=False)
    png = buffer.getvalue()
    result.output_key = storage.result_mask_key(task_id)
    storage.put(result.output_key, png, "image/png", bucket=bucket)
    result.output_format, result.size_bytes = "png", len(png)
    result.height, result.width = output.mask.shape[:2]
