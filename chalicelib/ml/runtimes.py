"""Model runtimes: ONNX networks on OpenCV's dnn (framework `opencv`) and scikit-learn models
(skops), and the model tasks (classify, detect, segment, embed) every runtime answers. Registered
ONNX models run on onnxruntime (chalicelib/ml/onnx_runtime.py); artifacts are verified by
chalicelib/ml/artifacts.py, input specs checked by chalicelib/ml/model_spec.py.

Why both cv2.dnn and onnxruntime: onnxruntime (78 MB) does not fit beside OpenCV in the imaging
layer's 250 MB, so registered ONNX models run on onnxruntime in a function and layer of their own
(no OpenCV there); models registered as framework `opencv`, and the built-in face networks, stay
on cv2.dnn in the imaging worker, where it costs no extra MB.

Why skops and not pickle for scikit-learn: loading a pickle runs whatever code it names.
skops lists the types a file would build; anything outside its safe set and TRUSTED_TYPES
(the one allow-list, shared with training) is refused before a single object is created.

This module imports without numpy, OpenCV or scikit-learn, so the api function can validate an
input spec when a model is registered.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chalicelib.errors import InvalidRequest
from chalicelib.ml.model_spec import MAX_TOP_K, InputSpec, softmax, top_predictions, validate_input_spec
from chalicelib.registry import ModelTaskEntry, Param, Registry

if TYPE_CHECKING:
    import numpy as np

    from chalicelib.imaging.analyzers import AnalysisInput


class OnnxModel:
    """An ONNX classifier or SSD-style detector run by OpenCV's dnn module.

    `labels[i]` names output i (class_<i> when not given). Models are loaded once; keep the
    instance for the container's life (key it by the artifact's sha256).
    """

    def __init__(self, path: str | os.PathLike | bytes, input_spec: dict | InputSpec, labels: list[str] | None = None):
        import cv2
        import numpy as np

        self.input_spec = validate_input_spec(input_spec)
        self.labels = [str(label) for label in labels] if labels else None
        self._forward_lock = threading.Lock()
        try:
            if isinstance(path, (bytes, bytearray)):
                self.net = cv2.dnn.readNetFromONNX(np.frombuffer(path, np.uint8))
            else:
                self.net = cv2.dnn.readNetFromONNX(str(path))
        except cv2.error as exc:
            raise InvalidRequest(
                f"OpenCV cannot load this ONNX model: {exc.err or exc}", code="invalid_model"
            ) from None

    def blob(self, image: np.ndarray) -> np.ndarray:
        """The input tensor (1 image) for a BGR, BGRA or gray uint8 image."""
        import cv2

        spec = self.input_spec
        assert spec.size is not None, "cv2.dnn models are registered with a size"
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        elif image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        image = _resized(image, spec.size, spec.resize)
        if spec.channel_order == "GRAY":
            pixels = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)[:, :, None]
        else:
            pixels = image[:, :, ::-1] if spec.channel_order == "RGB" else image
        return spec.tensor(pixels)

    def _forward(self, image: np.ndarray) -> np.ndarray:
        import cv2

        blob = self.blob(image)
        try:
            # The net holds its input and activations: one forward at a time (threads share models).
            with self._forward_lock:
                self.net.setInput(blob)
                return self.net.forward()
        except cv2.error as exc:
            raise InvalidRequest(
                f"the model failed on this input (check input_spec): {exc.err or exc}", code="model_failed"
            ) from None

    def predict(self, image: np.ndarray, top_k: int = 5) -> list[dict]:
        """Classify: [{label, confidence}] of the top_k classes, softmax confidences, best first."""
        import numpy as np

        scores = self._forward(image).reshape(-1).astype(np.float64)
        if self.labels and len(self.labels) != len(scores):
            raise InvalidRequest(
                f"the model has {len(scores)} outputs but {len(self.labels)} labels", code="invalid_model"
            )
        output = self.input_spec.output
        if output == "auto":
            is_distribution = scores.min() >= 0 and scores.max() <= 1 and abs(scores.sum() - 1) < 1e-3
            output = "probabilities" if is_distribution else "logits"
        probabilities = scores if output == "probabilities" else softmax(scores)
        return top_predictions(probabilities, self.labels or [f"class_{i}" for i in range(len(scores))], top_k)

    def classify(self, source: AnalysisInput, top_k: int = 5) -> list[dict]:
        """predict() on the decoded image (MODEL_TASKS' uniform entry point)."""
        return self.predict(source.array, top_k)

    def detect(self, image: np.ndarray, min_confidence: float = 0.5) -> list[dict]:
        """Detect with an SSD-style head (rows of [image_id, class, confidence, x1, y1, x2, y2],
        corners as fractions of the image): [{label, confidence, box}] best first, boxes in pixels."""
        import numpy as np

        rows = self._forward(image).reshape(-1, 7)
        height, width = image.shape[:2]
        found = []
        for _, class_id, confidence, x1, y1, x2, y2 in rows.astype(np.float64):
            if confidence < min_confidence:
                continue
            left, top = max(0, round(x1 * width)), max(0, round(y1 * height))
            right, bottom = min(width, round(x2 * width)), min(height, round(y2 * height))
            if right <= left or bottom <= top:
                continue
            index = int(class_id)
            label = self.labels[index] if self.labels and 0 <= index < len(self.labels) else f"class_{index}"
            found.append(
                {
                    "label": label,
                    "confidence": round(float(confidence), 6),
                    "box": {"x": left, "y": top, "width": right - left, "height": bottom - top},
                }
            )
        return sorted(found, key=lambda d: -d["confidence"])


def _resized(image: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
    import cv2

    width, height = size
    if mode == "crop":  # shorter side to fit, then the centre (the usual ImageNet preprocessing)
        scale = max(width / image.shape[1], height / image.shape[0])
        resized_w, resized_h = max(width, round(image.shape[1] * scale)), max(height, round(image.shape[0] * scale))
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        image = cv2.resize(image, (resized_w, resized_h), interpolation=interpolation)
        left, top = (resized_w - width) // 2, (resized_h - height) // 2
        return image[top : top + height, left : left + width]
    interpolation = cv2.INTER_AREA if width * height < image.shape[0] * image.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


# --- scikit-learn (skops) --------------------------------------------------------------------

# The one allow-list for skops files (trained here or registered by users): types a saved
# model may hold beyond skops' own safe set (scikit-learn estimators, numpy arrays and dtypes,
# builtins). Each is an estimator internal that builds no code and touches no file.
TRUSTED_TYPES = frozenset(
    {
        "sklearn.tree._tree.Tree",  # decision trees, forests, gradient boosting
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
        "sklearn.neighbors._kd_tree.KDTree",  # k nearest neighbours' search trees and metrics
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.metrics._dist_metrics.ManhattanDistance64",
        "sklearn.metrics._dist_metrics.MinkowskiDistance64",
        "sklearn.metrics._dist_metrics.ChebyshevDistance64",
    }
)


def load_sklearn(path_or_bytes: str | os.PathLike | bytes) -> Any:
    """A fitted scikit-learn classifier from a skops file or its bytes.

    Every type outside skops' safe set and TRUSTED_TYPES is refused before a single object is
    built: InvalidRequest code "untrusted_model" names them; "invalid_model" for bytes that are
    not a skops file or do not hold a fitted classifier.
    """
    import skops.io

    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        data = bytes(path_or_bytes)
    else:
        data = Path(path_or_bytes).read_bytes()
    try:
        untrusted = skops.io.get_untrusted_types(data=data)
    except Exception as exc:
        raise InvalidRequest(f"the model file is not a skops artifact: {exc}", code="invalid_model") from None
    refused = sorted(set(untrusted) - TRUSTED_TYPES)
    if refused:
        raise InvalidRequest(
            f"the model file holds types that are not trusted: {refused}",
            code="untrusted_model",
            allowed=sorted(TRUSTED_TYPES),
        )
    try:
        estimator = skops.io.loads(data, trusted=list(untrusted))
    except Exception as exc:
        raise InvalidRequest(f"the skops file cannot be loaded: {exc}", code="invalid_model") from None
    if not (hasattr(estimator, "predict") and hasattr(estimator, "classes_")):
        raise InvalidRequest(
            f"the model file holds a {type(estimator).__name__}, not a fitted classifier", code="invalid_model"
        )
    return estimator


class SklearnModel:
    """A fitted scikit-learn classifier (or pipeline ending in one), loaded from a skops file."""

    def __init__(
        self,
        estimator: Any,
        labels: list[str] | None = None,
        feature: str | None = None,
        feature_params: dict | None = None,
    ):
        # The feature (chalicelib.ml.features) the model was trained on turns an image into its input.
        self.feature, self.feature_params = feature, feature_params or {}
        if not hasattr(estimator, "predict") or not hasattr(estimator, "classes_"):
            raise InvalidRequest("the skops file does not hold a fitted classifier", code="invalid_model")
        self.estimator = estimator
        classes = [str(c) for c in estimator.classes_]
        if labels is not None and len(labels) != len(classes):
            raise InvalidRequest(f"the model has {len(classes)} classes but {len(labels)} labels", code="invalid_model")
        self.labels = [str(label) for label in labels] if labels is not None else classes

    @classmethod
    def load(
        cls,
        path_or_bytes: str | os.PathLike | bytes,
        labels: list[str] | None = None,
        feature: str | None = None,
        feature_params: dict | None = None,
    ) -> SklearnModel:
        """Load with skops through load_sklearn's allow-list."""
        return cls(load_sklearn(path_or_bytes), labels, feature, feature_params)

    def classify(self, source: AnalysisInput, top_k: int = 5) -> list[dict]:
        """Image → the model's feature vector (numpy + Pillow only) → top_k labels."""
        from chalicelib.ml.features import extract, extract_from_image

        if self.feature is None:
            raise InvalidRequest(
                "the model does not say which feature it takes (input_spec 'feature')", code="invalid_model"
            )
        if source.data is None:  # pixels alone (no file to decode at a reduced scale)
            return self.predict(extract_from_image(source.pil, self.feature, self.feature_params), top_k)
        return self.predict(extract(source.data, self.feature, self.feature_params), top_k)

    @property
    def n_features(self) -> int | None:
        return getattr(self.estimator, "n_features_in_", None)

    def predict(self, features: Any, top_k: int = 5) -> list[dict]:
        """[{label, confidence}] of the top_k classes for one feature vector, best first."""
        return self.predict_many([features], top_k)[0]

    def predict_many(self, rows: Any, top_k: int = 5) -> list[list[dict]]:
        """predict for each row of a 2-D feature array (a batch)."""
        import numpy as np

        x = np.asarray(rows, dtype=np.float64)
        if x.ndim != 2 or (self.n_features is not None and x.shape[1] != self.n_features):
            raise InvalidRequest(f"the model takes {self.n_features} features per row, got shape {list(x.shape)}")
        if not np.isfinite(x).all():
            raise InvalidRequest("features must be finite numbers")
        probabilities = self._probabilities(x)
        return [top_predictions(row, self.labels, top_k) for row in probabilities]

    def _probabilities(self, x: np.ndarray) -> np.ndarray:
        import numpy as np

        try:  # SVC(probability=False) has the attribute but raises when called
            return np.asarray(self.estimator.predict_proba(x), dtype=np.float64)
        except AttributeError:
            pass
        if hasattr(self.estimator, "decision_function"):
            scores = np.asarray(self.estimator.decision_function(x), dtype=np.float64)
            if scores.ndim == 1:  # binary: the score of classes_[1]
                scores = np.stack([-scores, scores], axis=1) / 2  # softmax of ±d/2 = sigmoid(d)
            return np.array([softmax(row) for row in scores])
        predicted = self.estimator.predict(x)  # no scores at all: the prediction is certain
        return np.array([[1.0 if c == p else 0.0 for c in self.estimator.classes_] for p in predicted])


# --- running a registered model ----------------------------------------------------------------


@dataclass
class ModelOutput:
    """What one run of a model gives: the result's JSON body, and a class map or an embedding."""

    body: dict
    mask: np.ndarray | None = None  # segment: uint8 class ids at the stored image's size
    embedding: np.ndarray | None = None  # embed: float32 vector


# What a registered model does with an image, by the model's task, with the parameters a request
# may give (the API validates them; the worker dispatches here). A model is an OnnxModel (cv2.dnn),
# an OrtModel (onnxruntime) or a SklearnModel; `source` an AnalysisInput holding the image's bytes.
MODEL_TASKS = Registry("model task", ModelTaskEntry)


def _predictions(found: list[dict]) -> ModelOutput:
    return ModelOutput({"predictions": found})


@MODEL_TASKS.register(
    "classify",
    Param("top_k", int, 5, "how many labels to return, best first", minimum=1, maximum=MAX_TOP_K),
    Param("min_confidence", float, 0.0, "leave out labels less confident than this", minimum=0.0, maximum=1.0),
    produces_image=False,
)
def classify(model: Any, source: AnalysisInput, *, top_k: int, min_confidence: float) -> ModelOutput:
    """Top-k labels with softmax (or the classifier's own) confidences, best first."""
    return _predictions([p for p in model.classify(source, top_k) if p["confidence"] >= min_confidence])


@MODEL_TASKS.register(
    "detect",
    Param("top_k", int, MAX_TOP_K, "most objects to return, most confident first", minimum=1, maximum=MAX_TOP_K),
    Param("min_confidence", float, 0.5, "leave out objects less confident than this", minimum=0.0, maximum=1.0),
    Param(
        "iou_threshold",
        float,
        0.45,
        "non-maximum suppression: drop a box overlapping a better one of its class by more than this (YOLO heads)",
        minimum=0.0,
        maximum=1.0,
    ),
    produces_image=False,
)
def detect(
    model: Any, source: AnalysisInput, *, top_k: int, min_confidence: float, iou_threshold: float
) -> ModelOutput:
    """Objects with label, confidence and box (pixels of the stored, oriented image)."""
    if isinstance(model, OnnxModel):  # cv2.dnn: SSD rows, suppressed by the network itself
        return _predictions(model.detect(source.array, min_confidence)[:top_k])
    if not hasattr(model, "segment"):
        raise InvalidRequest("only ONNX models can detect objects", code="unsupported_model")
    return _predictions(model.detect(source, min_confidence, iou_threshold)[:top_k])


@MODEL_TASKS.register("segment", produces_image=True)
def segment(model: Any, source: AnalysisInput) -> ModelOutput:
    """A class per pixel: a PNG mask of class ids (0..255) and each class's share of the image."""
    if not hasattr(model, "segment"):
        raise InvalidRequest(
            "segmentation runs on onnxruntime: register the model as framework 'onnx'", code="unsupported_model"
        )
    mask, shares = model.segment(source)
    return ModelOutput({"classes": shares, "width": int(mask.shape[1]), "height": int(mask.shape[0])}, mask=mask)


@MODEL_TASKS.register(
    "embed",
    Param("normalize", bool, True, "scale the vector to unit length (L2), as cosine similarity search expects"),
    produces_image=False,
)
def embed(model: Any, source: AnalysisInput, *, normalize: bool) -> ModelOutput:
    """A vector for the image, stored for GET /api/images/{id}/similar?model=…"""
    if not hasattr(model, "embed"):
        raise InvalidRequest(
            "embeddings run on onnxruntime: register the model as framework 'onnx'", code="unsupported_model"
        )
    vector = model.embed(source, normalize)
    norm = math.sqrt(float((vector.astype("float64") ** 2).sum()))
    return ModelOutput(
        {"dimensions": int(vector.size), "norm": round(norm, 6), "normalized": normalize}, embedding=vector
    )


def model_task(task: str) -> ModelTaskEntry:
    """The MODEL_TASKS entry for a model's task; a 400 for tasks no runtime runs."""
    if task not in MODEL_TASKS:
        raise InvalidRequest(
            f"models for {task!r} can be registered but not run; runnable: {MODEL_TASKS.names()}",
            code="unsupported_model_task",
            allowed=MODEL_TASKS.names(),
        )
    return MODEL_TASKS.get(task)


def run_model(model: Any, task: str, source: AnalysisInput, params: dict | None) -> ModelOutput:
    """One run of a loaded model on one image."""
    entry = model_task(task)
    return entry.func(model, source, **entry.clean_params(params))
