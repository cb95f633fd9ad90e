"""Run a registered model on one image, in a worker: fetch and verify its artifact, load it once
per container, predict.

Both workers run this: ONNX models (framework onnx/opencv, cv2.dnn) in the imaging worker fed
by the `tasks` queue; scikit-learn models in the ml worker fed by `ml-tasks`, whose layer has no
OpenCV: that path touches only skops, scikit-learn and chalicelib.ml.features (numpy + Pillow).

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
    from chalicelib.ml.runtimes import OnnxModel, SklearnModel

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
    from chalicelib.ml.runtimes import cached_artifact, store_artifact

    path = cached_artifact(model.sha256)
    if path is None:
        path = store_artifact(storage.get(model.artifact_key), model.sha256)
    return path


def load(model: ModelArtifact, path: Path) -> OnnxModel | SklearnModel:
    from chalicelib.ml.runtimes import OnnxModel, SklearnModel

    labels = list(model.labels) or None
    if model.framework == "sklearn":
        return SklearnModel.load(
            path, labels, feature=model.input_spec.get("feature"), feature_params=model.input_spec.get("feature_params")
        )
    return OnnxModel(path, model.input_spec, labels)


def loaded_model(model: ModelArtifact) -> OnnxModel | SklearnModel:
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
            _loaded.popitem(last=False)
    return runtime


def run(model: ModelArtifact, data: bytes, params: dict) -> ResultRow:
    """The prediction result row for one image: predictions best first, the top one lifted out."""
    from chalicelib.imaging.analyzers import AnalysisInput
    from chalicelib.ml.runtimes import run_model

    runtime = loaded_model(model)
    source = AnalysisInput.from_bytes(data, max_pixels=get_settings().max_pixels)
    started = time.perf_counter()
    predictions = run_model(runtime, model.task, source, params)
    metrics.model_inference(model.framework, (time.perf_counter() - started) * 1000)
    body = {"predictions": predictions, "model": {"name": model.name, "version": model.version}}
    return analysis_result(body, kind="prediction")
