"""Running registered models: declared parameters, and the scikit-learn path without OpenCV."""

import subprocess
import sys
from pathlib import Path

import pytest

from chalicelib.errors import InvalidRequest
from chalicelib.ml.runtimes import MODEL_TASKS, model_task

PROJECT_DIR = Path(__file__).resolve().parents[2]


def test_model_task_parameters_are_declared_and_checked():
    assert MODEL_TASKS.names() == ["classify", "detect", "embed", "segment"]
    assert model_task("classify").clean_params({}) == {"top_k": 5, "min_confidence": 0.0}
    assert model_task("detect").clean_params({"top_k": 3}) == {"top_k": 3, "min_confidence": 0.5, "iou_threshold": 0.45}
    assert model_task("embed").clean_params({}) == {"normalize": True}
    assert model_task("segment").clean_params({}) == {}
    for bad in ({"top_k": 0}, {"top_k": 101}, {"min_confidence": 1.5}, {"threshold": 0.2}):
        with pytest.raises(InvalidRequest):
            model_task("classify").clean_params(bad)
    with pytest.raises(InvalidRequest) as unsupported:
        model_task("pose")
    assert unsupported.value.code == "unsupported_model_task"


# The ml Lambda layer has no OpenCV: the scikit-learn path must run with cv2 unimportable.
WITHOUT_OPENCV = """
import sys
sys.modules["cv2"] = None  # any `import cv2` now raises ImportError
import io
from pathlib import Path
import numpy as np
from PIL import Image
from sklearn.datasets import load_digits
from chalicelib.services.model_runs import ModelArtifact, load
from chalicelib.imaging.analyzers import AnalysisInput
from chalicelib.ml.features import extract
from chalicelib.ml.runtimes import run_model
from chalicelib.ml.training import save_model, train_and_evaluate

def digit_png(image):
    out = io.BytesIO()
    Image.fromarray(np.round(image * 255 / 16).astype(np.uint8), "L").save(out, "PNG")
    return out.getvalue()

digits = load_digits()
pngs = [digit_png(image) for image in digits.images[:301]]
X = np.stack([extract(data, "pixels", {"size": 8}) for data in pngs[:300]])
outcome = train_and_evaluate(X, digits.target[:300], algorithm="logistic_regression", params={}, seed=0)
path = Path(sys.argv[1])
path.write_bytes(save_model(outcome.model))
spec = {"feature": "pixels", "feature_params": {"size": 8}}
model = load(ModelArtifact(1, "digits", 1, "sklearn", "classify", "k", "0" * 64, spec, []), path)
found = run_model(model, "classify", AnalysisInput.from_bytes(pngs[300]), {"top_k": 2}).body["predictions"]
assert len(found) == 2 and found[0]["confidence"] >= found[1]["confidence"], found
print(found[0]["label"], digits.target[300])
"""


def test_scikit_learn_models_run_without_opencv(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_OPENCV, str(tmp_path / "digits.skops")],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    predicted, truth = result.stdout.split()
    assert predicted == truth


def test_the_queue_of_a_model_task_follows_its_runtime():
    from chalicelib.config import get_settings
    from chalicelib.services.resolver import queue_for, runtime_of

    def queue_for_model(framework: str) -> str:
        return queue_for(runtime_of(framework))

    settings = get_settings()
    assert queue_for_model("onnx") == settings.inference_queue  # onnxruntime, the inference function
    assert queue_for_model("opencv") == settings.tasks_queue  # cv2.dnn, the imaging worker
    assert queue_for_model("sklearn") == settings.ml_tasks_queue
    assert len({settings.inference_queue, settings.tasks_queue, settings.ml_tasks_queue}) == 3
