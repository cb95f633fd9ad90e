"""Training, held-out evaluation, artifacts and predictions for scikit-learn classifiers.

`ALGORITHMS` declares each estimator's tunable parameters with their ranges (the API validates
a job against them) and builds a Pipeline: a StandardScaler in front of every estimator that
depends on feature scales (all but the random forest). The model that is evaluated is the one
that is saved, so its metrics describe the artifact exactly.

Artifacts are written with skops, never pickle: loading a pickle runs whatever code it names,
while skops refuses every type outside its safe set and the few extra types in
models.TRUSTED_TYPES (one allow-list for trained and registered models).
scikit-learn and skops are imported inside functions: the api Lambda has neither.
"""

from __future__ import annotations

import math
import warnings
import zipfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chalicelib.errors import InvalidRequest
from chalicelib.ml.runtimes import TRUSTED_TYPES, load_sklearn  # noqa: F401 - TRUSTED_TYPES re-exported
from chalicelib.registry import ML, AlgorithmEntry, Param, Registry

if TYPE_CHECKING:
    import numpy as np
    from sklearn.pipeline import Pipeline

ALGORITHMS = Registry("algorithm", AlgorithmEntry)

TEST_SIZE_RANGE = (0.05, 0.5)
CLASS_WEIGHTS = ("none", "balanced")


def _class_weight(value: str) -> str | None:
    return None if value == "none" else value


def _scaled(estimator) -> Pipeline:
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline([("scale", StandardScaler()), ("classify", estimator)])


def _C(default: float = 1.0) -> Param:
    return Param(
        "C", float, default, "inverse regularization strength (smaller = simpler model)", minimum=1e-4, maximum=1e4
    )


def _class_weight_param() -> Param:
    return Param(
        "class_weight", str, "none", "'balanced' weighs classes inversely to their size", choices=CLASS_WEIGHTS
    )


@ALGORITHMS.register(
    "logistic_regression",
    _C(),
    Param("max_iter", int, 1000, "most solver iterations", minimum=50, maximum=10_000),
    _class_weight_param(),
    runtime=ML,
    produces_image=False,
)
def logistic_regression(*, seed: int, C: float, max_iter: int, class_weight: str) -> Pipeline:
    """Multinomial logistic regression on standardized features."""
    from sklearn.linear_model import LogisticRegression

    return _scaled(
        LogisticRegression(C=C, max_iter=max_iter, class_weight=_class_weight(class_weight), random_state=seed)
    )


@ALGORITHMS.register(
    "linear_svm",
    _C(),
    Param("max_iter", int, 5000, "most solver iterations", minimum=100, maximum=100_000),
    _class_weight_param(),
    runtime=ML,
    produces_image=False,
)
def linear_svm(*, seed: int, C: float, max_iter: int, class_weight: str) -> Pipeline:
    """Linear support vector machine (one-vs-rest) on standardized features."""
    from sklearn.svm import LinearSVC

    return _scaled(
        LinearSVC(C=C, max_iter=max_iter, class_weight=_class_weight(class_weight), dual="auto", random_state=seed)
    )


def _forest_fit_params(params: dict, y_train: np.ndarray) -> dict:
    if params["class_weight"] != "balanced":
        return {}
    from sklearn.utils.class_weight import compute_sample_weight

    # The same weights as RandomForestClassifier(class_weight="balanced") computes.
    return {"classify__sample_weight": compute_sample_weight("balanced", y_train)}


@ALGORITHMS.register(
    "random_forest",
    Param("n_estimators", int, 200, "number of trees", minimum=10, maximum=1000),
    Param("max_depth", int, None, "deepest a tree may grow (unset: until leaves are pure)", minimum=1, maximum=100),
    Param("min_samples_leaf", int, 1, "fewest training items in a leaf", minimum=1, maximum=100),
    Param("max_features", str, "sqrt", "features considered at each split", choices=("sqrt", "log2", "all")),
    _class_weight_param(),
    runtime=ML,
    produces_image=False,
    fit_params=_forest_fit_params,
)
def random_forest(
    *, seed: int, n_estimators: int, max_depth: int | None, min_samples_leaf: int, max_features: str, class_weight: str
) -> Pipeline:
    """Random forest of decision trees (no scaling: trees split on thresholds)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline

    # n_jobs=1: a Dask worker already runs one task per core. class_weight is applied as
    # sample weights (_forest_fit_params): the forest turns "balanced" into a dict that
    # scikit-learn then looks up with int("7") for the label "7", and fails.
    forest = RandomForestClassifier(
        n_estimators=n_estimators,
        max_depth=max_depth,
        min_samples_leaf=min_samples_leaf,
        max_features=None if max_features == "all" else max_features,
        random_state=seed,
        n_jobs=1,
    )
    return Pipeline([("classify", forest)])


def _knn_check(params: dict, y_train: np.ndarray) -> None:
    n_train = len(y_train)
    if params["n_neighbors"] > n_train:
        raise InvalidRequest(
            f"knn: n_neighbors={params['n_neighbors']} is more than the {n_train} training items; lower it"
        )


@ALGORITHMS.register(
    "knn",
    Param("n_neighbors", int, 5, "neighbours that vote", minimum=1, maximum=200),
    Param("weights", str, "distance", "'distance': nearer neighbours count more", choices=("uniform", "distance")),
    runtime=ML,
    produces_image=False,
    check_fit=_knn_check,
)
def knn(*, seed: int, n_neighbors: int, weights: str) -> Pipeline:
    """k nearest neighbours (Euclidean) on standardized features."""
    from sklearn.neighbors import KNeighborsClassifier

    return _scaled(KNeighborsClassifier(n_neighbors=n_neighbors, weights=weights))


def _mlp_check(params: dict, y_train: np.ndarray) -> None:
    if not params["early_stopping"]:
        return
    counts = Counter(y_train.tolist())
    # Early stopping holds out a stratified 10% of the training items: each class needs 2 there.
    if min(counts.values()) < 2 or math.ceil(0.1 * len(y_train)) < len(counts):
        raise InvalidRequest(
            "mlp: too few training items per class for early stopping's 10% validation split; "
            "set early_stopping to false or add items"
        )


@ALGORITHMS.register(
    "mlp",
    Param("hidden_units", int, 128, "neurons per hidden layer", minimum=4, maximum=1024),
    Param("hidden_layers", int, 1, "number of hidden layers", minimum=1, maximum=4),
    Param("alpha", float, 1e-4, "L2 penalty", minimum=0.0, maximum=10.0),
    Param("learning_rate", float, 1e-3, "Adam's initial step size", minimum=1e-5, maximum=1.0),
    Param("max_iter", int, 300, "most epochs", minimum=10, maximum=5000),
    # Off by default: on a few hundred items the 10% validation split is too small to tell
    # progress from noise and training stops after a few epochs.
    Param("early_stopping", bool, False, "stop when a 10% validation split stops improving (for large datasets)"),
    runtime=ML,
    produces_image=False,
    check_fit=_mlp_check,
)
def mlp(
    *,
    seed: int,
    hidden_units: int,
    hidden_layers: int,
    alpha: float,
    learning_rate: float,
    max_iter: int,
    early_stopping: bool,
) -> Pipeline:
    """Multi-layer perceptron (ReLU, Adam) on standardized features."""
    from sklearn.neural_network import MLPClassifier

    return _scaled(
        MLPClassifier(
            hidden_layer_sizes=(hidden_units,) * hidden_layers,
            alpha=alpha,
            learning_rate_init=learning_rate,
            max_iter=max_iter,
            early_stopping=early_stopping,
            random_state=seed,
        )
    )


@dataclass
class TrainingOutcome:
    model: Pipeline
    labels: list[str]
    metrics: dict
    # Messages scikit-learn raised while fitting (e.g. "did not converge"), for the job's record.
    warnings: list[str] = field(default_factory=list)


def clean_algorithm_params(algorithm: str, params: dict | None) -> dict:
    """Validated parameters of an algorithm, defaults filled in; raises InvalidRequest."""
    return ALGORITHMS.get(algorithm).clean_params(params)


def check_split(labels: Sequence[str], test_size: object) -> None:
    """Raise InvalidRequest unless a stratified split of these labels is possible (test_size as requested)."""
    if (
        isinstance(test_size, bool)
        or not isinstance(test_size, (int, float))
        or not (TEST_SIZE_RANGE[0] <= test_size <= TEST_SIZE_RANGE[1])
    ):
        raise InvalidRequest(
            f"'test_size' must be a fraction from {TEST_SIZE_RANGE[0]} to {TEST_SIZE_RANGE[1]}, got {test_size!r}"
        )
    counts = Counter(labels)
    if len(counts) < 2:
        raise InvalidRequest(
            f"the dataset has {len(counts)} class{'es' if len(counts) != 1 else ''} "
            f"({', '.join(map(repr, counts)) or 'no items'}); a classifier needs at least 2",
            code="too_few_classes",
        )
    scarce = sorted((n, label) for label, n in counts.items() if n < 2)
    if scarce:
        listed = ", ".join(f"{label!r} ({n})" for n, label in scarce[:10])
        raise InvalidRequest(
            f"every class needs at least 2 items (one to train on, one to test); too few in: {listed}",
            code="too_few_items",
        )
    n = len(labels)
    # scikit-learn's rounding: the test set is ceil(test_size·n), the rest trains.
    n_test = math.ceil(test_size * n)
    if n_test < len(counts) or n - n_test < len(counts):
        raise InvalidRequest(
            f"{n} items split {n - n_test}/{n_test} cannot hold each of the {len(counts)} classes on both sides; "
            f"add items or change test_size",
            code="too_few_items",
        )


def train_and_evaluate(
    X: np.ndarray,
    y: Sequence | np.ndarray,
    *,
    algorithm: str,
    params: dict | None,
    test_size: float = 0.25,
    seed: int = 0,
) -> TrainingOutcome:
    """Fit on a stratified (1 − test_size) share of (X, y), evaluate on the rest.

    Labels are compared as strings. Raises InvalidRequest for an unknown algorithm, bad
    parameters, or a dataset that cannot be split (fewer than 2 classes, too few items per class).
    """
    import numpy as np
    from sklearn.model_selection import train_test_split

    entry = ALGORITHMS.get(algorithm)
    clean = entry.clean_params(params)
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray([str(label) for label in y])
    if X.ndim != 2 or len(X) != len(y):
        raise ValueError(f"X must be 2-D with one row per label, got {X.shape} for {len(y)} labels")
    if not np.isfinite(X).all():
        raise ValueError("X holds NaN or infinite values")
    check_split(y.tolist(), test_size)

    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=test_size, random_state=seed, stratify=y)
    if entry.check_fit:
        entry.check_fit(clean, y_train)
    model = entry.func(seed=seed, **clean)
    fit_params = entry.fit_params(clean, y_train) if entry.fit_params else {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X_train, y_train, **fit_params)
    labels = [str(label) for label in model.classes_]
    metrics = evaluate(model, X_test, y_test, labels)
    metrics["train_items"], metrics["test_items"] = len(y_train), len(y_test)
    messages = list(dict.fromkeys(str(w.message) for w in caught))
    return TrainingOutcome(model, labels, metrics, messages)


def evaluate(model, X: np.ndarray, y: Sequence[str], labels: list[str]) -> dict:
    """{accuracy, macro_f1, per_class: {label: {precision, recall, f1, support}}, confusion_matrix}."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    predicted = model.predict(X)
    precision, recall, f1, support = precision_recall_fscore_support(y, predicted, labels=labels, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y, predicted)),
        "macro_f1": float(f1_score(y, predicted, labels=labels, average="macro", zero_division=0)),
        "per_class": {
            label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for label, p, r, f, s in zip(labels, precision, recall, f1, support)
        },
        # Rows are true labels, columns predicted labels, both in `labels` order.
        "confusion_matrix": {"labels": list(labels), "matrix": confusion_matrix(y, predicted, labels=labels).tolist()},
    }


def save_model(model: Any) -> bytes:
    """The model as skops bytes (a zip of JSON and .npy files; no pickle inside)."""
    import skops.io

    return skops.io.dumps(model, compression=zipfile.ZIP_DEFLATED)


def load_model(data: bytes) -> Any:
    """A model from skops bytes, refusing any type outside the allow-list (models.TRUSTED_TYPES).

    Raises InvalidRequest (code "untrusted_model") naming the refused types, or
    (code "invalid_model") for bytes that are not a skops classifier.
    """
    return load_sklearn(data)


def predict_proba(model: Any, X: np.ndarray, *, top: int | None = None) -> list[list[dict]]:
    """For each row of X: [{label, confidence}] over the model's classes, most confident first.

    Confidences are predict_proba's probabilities; for models without it (the linear SVM)
    a softmax of the decision function (a logistic of the margin for two classes), which
    ranks like the margins and sums to 1 but is not calibrated.
    """
    import numpy as np

    X = np.asarray(X, dtype=np.float32)
    if X.ndim == 1:
        X = X[None, :]
    labels = [str(label) for label in model.classes_]
    if hasattr(model, "predict_proba"):
        scores = np.asarray(model.predict_proba(X), dtype=np.float64)
    else:
        margins = np.asarray(model.decision_function(X), dtype=np.float64)
        if margins.ndim == 1:
            margins = np.stack([np.zeros_like(margins), margins], axis=1)
        margins -= margins.max(axis=1, keepdims=True)
        exp = np.exp(margins)
        scores = exp / exp.sum(axis=1, keepdims=True)
    ranked = []
    for row in scores:
        order = np.argsort(-row, kind="stable")[:top]
        ranked.append([{"label": labels[i], "confidence": round(float(row[i]), 6)} for i in order])
    return ranked


def classify_image(
    model: Any, data: bytes, feature: str, feature_params: dict | None = None, *, top: int | None = 5
) -> list[dict]:
    """Image bytes → [{label, confidence}] with the feature the model was trained on."""
    from chalicelib.ml.features import extract

    return predict_proba(model, extract(data, feature, feature_params), top=top)[0]
