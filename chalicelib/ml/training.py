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
from collections.abc import Callable, Sequence
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


def _epochs(default: int) -> Param:
    return Param(
        "epochs",
        int,
        default,
        "passes over the training shards when the model is fitted incrementally (fit 'incremental')",
        minimum=1,
        maximum=200,
    )


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
    _epochs(30),
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
    epochs: int,
) -> Pipeline:
    """Multi-layer perceptron (ReLU, Adam) on standardized features; incremental on large datasets."""
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


@ALGORITHMS.register(
    "sgd",
    Param(
        "loss",
        str,
        "log_loss",
        "log_loss: logistic regression; hinge: a linear SVM; modified_huber: both",
        choices=("log_loss", "hinge", "modified_huber"),
    ),
    Param("alpha", float, 1e-4, "L2 penalty", minimum=1e-7, maximum=10.0),
    Param("max_iter", int, 1000, "most epochs of an in-memory fit", minimum=5, maximum=10_000),
    _epochs(10),
    runtime=ML,
    produces_image=False,
)
def sgd(*, seed: int, loss: str, alpha: float, max_iter: int, epochs: int) -> Pipeline:
    """Linear classifier by stochastic gradient descent on standardized features; incremental on large datasets."""
    from sklearn.linear_model import SGDClassifier

    return _scaled(SGDClassifier(loss=loss, alpha=alpha, max_iter=max_iter, tol=1e-3, random_state=seed))


@ALGORITHMS.register(
    "naive_bayes",
    Param(
        "var_smoothing",
        float,
        1e-9,
        "share of the largest variance added to every variance",
        minimum=1e-12,
        maximum=1.0,
    ),
    runtime=ML,
    produces_image=False,
)
def naive_bayes(*, seed: int, var_smoothing: float) -> Pipeline:
    """Gaussian naive Bayes on standardized features: one pass, exact when fitted incrementally."""
    from sklearn.naive_bayes import GaussianNB

    return _scaled(GaussianNB(var_smoothing=var_smoothing))


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
    check_split_counts(Counter(labels), test_size)


def check_split_counts(counts: Counter | dict[str, int], test_size: float) -> None:
    """check_split on the number of items of each label."""
    counts = Counter({label: n for label, n in counts.items() if n > 0})
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
    n = sum(counts.values())
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
    model, messages = _fit_in_memory(entry, clean, X_train, y_train, seed)
    labels = [str(label) for label in model.classes_]
    metrics = evaluate(model, X_test, y_test, labels)
    metrics["train_items"], metrics["test_items"] = len(y_train), len(y_test)
    return TrainingOutcome(model, labels, metrics, messages)


def _fit_in_memory(
    entry: AlgorithmEntry, clean: dict, X: np.ndarray, y: np.ndarray, seed: int
) -> tuple[Any, list[str]]:
    """The algorithm's model fitted on (X, y), and the distinct warnings scikit-learn raised."""
    if entry.check_fit:
        entry.check_fit(clean, y)
    model = entry.func(seed=seed, **clean)
    fit_params = entry.fit_params(clean, y) if entry.fit_params else {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X, y, **fit_params)
    return model, list(dict.fromkeys(str(w.message) for w in caught))


def evaluate(model, X: np.ndarray, y: Sequence[str], labels: list[str]) -> dict:
    """{accuracy, macro_f1, per_class: {label: {precision, recall, f1, support}}, confusion_matrix}."""
    from sklearn.metrics import confusion_matrix

    return metrics_from_confusion(labels, confusion_matrix(y, model.predict(X), labels=labels))


def metrics_from_confusion(labels: list[str], matrix: np.ndarray) -> dict:
    """evaluate's metrics from a confusion matrix (rows true, columns predicted, in `labels` order),
    as scikit-learn computes them with zero_division=0: what a streamed evaluation accumulates."""
    import numpy as np

    matrix = np.asarray(matrix, dtype=np.int64)
    hits = np.diag(matrix).astype(np.float64)
    support, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    recall = np.divide(hits, support, out=np.zeros_like(hits), where=support > 0)
    wrong = support + predicted  # 2·tp + fp + fn
    f1 = np.divide(2 * hits, wrong, out=np.zeros_like(hits), where=wrong > 0)
    total = int(matrix.sum())
    return {
        "accuracy": float(hits.sum() / total) if total else 0.0,
        "macro_f1": float(f1.mean()) if len(labels) else 0.0,
        "per_class": {
            label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(n)}
            for label, p, r, f, n in zip(labels, precision, recall, f1, support)
        },
        # Rows are true labels, columns predicted labels, both in `labels` order.
        "confusion_matrix": {"labels": list(labels), "matrix": matrix.tolist()},
    }


# --- datasets larger than memory: features in shards, fitted incrementally or on a sample ---------

# The algorithms whose estimator has partial_fit (a unit test holds this to scikit-learn): fitted
# by streaming the shards when the training set is larger than the sample.
INCREMENTAL = frozenset({"mlp", "naive_bayes", "sgd"})
FIT_METHODS = ("auto", "incremental", "sample")
DEFAULT_SAMPLE_ITEMS = 50_000
SAMPLE_ITEMS_RANGE = (100, 5_000_000)

# What the driver knows of one shard: its index and how many items of each label worked.
ShardCounts = tuple[int, dict[str, int]]
# Shard index → label → (items held out, items in the fitted sample); the rest of its items train
# only an incremental fit.
SplitPlan = dict[int, dict[str, tuple[int, int]]]


def clean_fit_options(algorithm: str, fit: dict | None) -> dict:
    """{method, sample_items} validated: `auto` fits in memory when the training items fit in the
    sample, else incrementally where the algorithm allows it (INCREMENTAL), else on the sample."""
    fit = dict(fit or {})
    unknown = sorted(set(fit) - {"method", "sample_items"})
    if unknown:
        raise InvalidRequest(f"unknown fit option(s) {unknown}; allowed: ['method', 'sample_items']")
    method = fit.get("method") or "auto"
    if method not in FIT_METHODS:
        raise InvalidRequest(
            f"'fit.method' must be one of {list(FIT_METHODS)}, got {method!r}", allowed=list(FIT_METHODS)
        )
    if method == "incremental" and algorithm not in INCREMENTAL:
        raise InvalidRequest(
            f"{algorithm} cannot be fitted incrementally (no partial_fit); the ones that can: {sorted(INCREMENTAL)}",
            allowed=sorted(INCREMENTAL),
        )
    sample_items = fit.get("sample_items", DEFAULT_SAMPLE_ITEMS)
    low, high = SAMPLE_ITEMS_RANGE
    if isinstance(sample_items, bool) or not isinstance(sample_items, int) or not low <= sample_items <= high:
        raise InvalidRequest(f"'fit.sample_items' must be an integer from {low:,} to {high:,}, got {sample_items!r}")
    return {"method": method, "sample_items": sample_items}


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """`total` (at most sum(weights)) shared in proportion to `weights` by largest remainder; no
    share exceeds its weight."""
    whole = sum(weights)
    if whole == 0:
        return [0] * len(weights)
    exact = [total * w / whole for w in weights]
    shares = [math.floor(x) for x in exact]
    for i in sorted(range(len(weights)), key=lambda i: shares[i] - exact[i])[: total - sum(shares)]:
        shares[i] += 1
    return shares


def plan_split(shards: Sequence[ShardCounts], test_size: float, sample_items: int | None) -> SplitPlan:
    """A stratified split over shards without reading them: each label holds out
    round(test_size · n), at least 1 and at most n − 1, and a sample of `sample_items` training
    items (None: none) keeps the labels' proportions; both are spread over the shards in
    proportion to where the label's items are."""
    labels = sorted({label for _, counts in shards for label, n in counts.items() if n})
    by_label = {label: [counts.get(label, 0) for _, counts in shards] for label in labels}
    held_out = {}
    for label, spread in by_label.items():
        n = sum(spread)
        held_out[label] = allocate(min(n - 1, max(1, round(test_size * n))), spread)
    train = {label: [n - t for n, t in zip(spread, held_out[label])] for label, spread in by_label.items()}
    sampled = {label: [0] * len(shards) for label in labels}
    if sample_items:
        totals = [sum(train[label]) for label in labels]
        per_label = allocate(min(sample_items, sum(totals)), totals)
        for label, wanted, available in zip(labels, per_label, totals):
            sampled[label] = allocate(max(wanted, min(1, available)), train[label])
    return {
        index: {label: (held_out[label][k], sampled[label][k]) for label in labels if by_label[label][k]}
        for k, (index, _) in enumerate(shards)
    }


def shard_roles(labels: np.ndarray, quotas: dict[str, tuple[int, int]], *, seed: int, index: int) -> np.ndarray:
    """Each row of a shard: 2 held out, 1 in the fitted sample, 0 training only an incremental fit;
    the same for every read of the shard (seeded by the job's seed and the shard's index)."""
    import numpy as np

    rng = np.random.default_rng([seed, index])
    roles = np.zeros(len(labels), dtype=np.int8)
    for label in sorted(quotas):
        test, sample = quotas[label]
        rows = rng.permutation(np.flatnonzero(labels == label))
        roles[rows[:test]] = 2
        roles[rows[test : test + sample]] = 1
    return roles


def train_from_shards(
    shards: Sequence[ShardCounts],
    load_shard: Callable[[int], tuple[np.ndarray, np.ndarray]],
    *,
    algorithm: str,
    params: dict | None,
    test_size: float,
    seed: int,
    fit: dict | None = None,
) -> TrainingOutcome:
    """Fit on feature shards that need not fit in memory together; evaluate on the held-out items.

    `load_shard(index)` gives a shard's (labels, float32 matrix). The model is fitted
    incrementally (partial_fit over `epochs` shuffled passes, after one pass that fits the
    scaler) or in memory on a stratified sample of at most `sample_items` training items
    (clean_fit_options); the held-out items are predicted shard by shard into a confusion matrix,
    so at most one shard and the sample are in memory. `metrics["fit"]` says how it was fitted.
    """
    import numpy as np

    entry = ALGORITHMS.get(algorithm)
    clean = entry.clean_params(params)
    options = clean_fit_options(algorithm, fit)
    counts: Counter[str] = Counter()
    for _, shard_counts in shards:
        counts.update(shard_counts)
    check_split_counts(counts, test_size)
    plan = plan_split(shards, test_size, None)
    n_test = sum(t for quotas in plan.values() for t, _ in quotas.values())
    n_train = sum(counts.values()) - n_test
    incremental = options["method"] == "incremental" or (
        options["method"] == "auto" and algorithm in INCREMENTAL and n_train > options["sample_items"]
    )
    indices = [index for index, shard_counts in shards if sum(shard_counts.values())]

    def rows(index: int, wanted) -> tuple[np.ndarray, np.ndarray]:
        y, X = load_shard(index)
        keep = wanted(shard_roles(y, plan[index], seed=seed, index=index))
        return y[keep], X[keep]

    if incremental:
        model, messages, how = _fit_incremental(entry, clean, indices, rows, sorted(counts), seed)
    else:
        plan = plan_split(shards, test_size, options["sample_items"])
        parts = [rows(index, lambda roles: roles == 1) for index in indices]
        y_sample = np.concatenate([y for y, _ in parts])
        X_sample = np.concatenate([X for _, X in parts])
        del parts
        model, messages = _fit_in_memory(entry, clean, X_sample, y_sample, seed)
        how = {"method": "in_memory" if len(y_sample) == n_train else "sample", "sample_items": len(y_sample)}
        del X_sample, y_sample
    labels = [str(label) for label in model.classes_]
    position = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for index in indices:
        y, X = rows(index, lambda roles: roles == 2)
        if len(y):
            truth = np.array([position[v] for v in y.tolist()])
            guess = np.array([position[str(v)] for v in model.predict(X).tolist()])
            np.add.at(matrix, (truth, guess), 1)
    metrics = metrics_from_confusion(labels, matrix)
    metrics["train_items"], metrics["test_items"] = n_train, int(matrix.sum())
    metrics["fit"] = {**how, "train_items": n_train, "shards": len(indices), "description": _describe_fit(how, n_train)}
    return TrainingOutcome(model, labels, metrics, messages)


def _fit_incremental(entry, clean: dict, indices: list[int], rows, classes: list[str], seed: int):
    """The pipeline fitted by partial_fit: one pass for the scaler, then `epochs` shuffled passes."""
    import numpy as np

    model = entry.func(seed=seed, **clean)
    estimator = model.steps[-1][1]
    scaler = dict(model.steps).get("scale")
    training = lambda roles: roles != 2  # noqa: E731 - the rows an incremental fit learns from
    if scaler is not None:
        for index in indices:
            _, X = rows(index, training)
            if len(X):
                scaler.partial_fit(X)
    rng = np.random.default_rng(seed)
    epochs = clean.get("epochs", 1) if entry.name != "naive_bayes" else 1  # one pass is exact for naive Bayes
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(epochs):
            for index in rng.permutation(indices).tolist():
                y, X = rows(index, training)
                if not len(y):
                    continue
                order = rng.permutation(len(y))
                X = scaler.transform(X[order]) if scaler is not None else X[order]
                estimator.partial_fit(X, y[order], classes=classes)
    return model, list(dict.fromkeys(str(w.message) for w in caught)), {"method": "incremental", "epochs": epochs}


def _describe_fit(how: dict, n_train: int) -> str:
    if how["method"] == "incremental":
        return f"incremental (partial_fit): {how['epochs']} pass(es) over {n_train:,} training items"
    if how["method"] == "sample":
        return f"in memory on a stratified sample of {how['sample_items']:,} of {n_train:,} training items"
    return f"in memory on all {n_train:,} training items"


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
