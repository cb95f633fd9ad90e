"""Training, evaluation, skops artifacts and predictions, on scikit-learn's digits written as PNGs."""

import io
import pickle
import zipfile

import numpy as np
import pytest
import skops.io
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from chalicelib.errors import InvalidRequest
from chalicelib.ml.features import extract
from chalicelib.ml.training import (
    ALGORITHMS,
    TRUSTED_TYPES,
    classify_image,
    load_model,
    predict_proba,
    save_model,
    train_and_evaluate,
)

# Small settings so that every algorithm fits in well under a second.
QUICK_PARAMS = {
    "logistic_regression": {},
    "linear_svm": {},
    "random_forest": {"n_estimators": 20},
    "knn": {"n_neighbors": 3},
    "mlp": {"hidden_units": 32, "max_iter": 200, "early_stopping": False},
    "sgd": {},
    "naive_bayes": {},
}


def digit_png(image: np.ndarray) -> bytes:
    """An 8×8 digit (values 0..16) as an 8-bit grayscale PNG (0..255)."""
    out = io.BytesIO()
    Image.fromarray(np.round(image * 255.0 / 16.0).astype(np.uint8), "L").save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def digits():
    bunch = load_digits()
    pngs = [digit_png(image) for image in bunch.images]
    X = np.stack([extract(data, "pixels", {"size": 8}) for data in pngs])
    y = [str(target) for target in bunch.target]
    return pngs, X, y


@pytest.fixture(scope="module")
def three_digits(digits):
    """60 items of the digits 0, 1 and 2 (20 each)."""
    _, X, y = digits
    y = np.asarray(y)
    chosen = np.concatenate([np.flatnonzero(y == d)[:20] for d in ("0", "1", "2")])
    return X[chosen], y[chosen].tolist()


def test_pixels_of_the_pngs_reproduce_the_digits_data(digits):
    _, X, _ = digits
    # 0..16 → 0..255 → 0..1: only the 8-bit rounding differs.
    assert np.abs(X * 16 - load_digits().data).max() < 16 / 255


def test_logistic_regression_on_digit_pngs_reaches_95_percent(digits):
    _, X, y = digits
    outcome = train_and_evaluate(X, y, algorithm="logistic_regression", params={}, test_size=0.25, seed=0)
    metrics = outcome.metrics
    assert metrics["accuracy"] >= 0.95
    assert metrics["macro_f1"] >= 0.95
    assert outcome.labels == [str(d) for d in range(10)]
    assert metrics["test_items"] == 450 and metrics["train_items"] == 1347
    assert set(metrics["per_class"]) == set(outcome.labels)
    assert sum(c["support"] for c in metrics["per_class"].values()) == 450
    for scores in metrics["per_class"].values():
        assert 0.8 <= scores["precision"] <= 1 and 0.8 <= scores["recall"] <= 1
    matrix = np.array(metrics["confusion_matrix"]["matrix"])
    assert metrics["confusion_matrix"]["labels"] == outcome.labels
    assert matrix.shape == (10, 10) and matrix.sum() == 450
    assert np.trace(matrix) / 450 == pytest.approx(metrics["accuracy"])
    assert matrix.sum(axis=1).tolist() == [metrics["per_class"][label]["support"] for label in outcome.labels]


def test_a_held_out_digit_image_is_classified_with_a_confidence(digits):
    pngs, X, y = digits
    held_out = range(1700, 1797)
    outcome = train_and_evaluate(X[:1700], y[:1700], algorithm="logistic_regression", params={}, test_size=0.25, seed=1)
    model = load_model(save_model(outcome.model))
    correct = 0
    for i in held_out:
        ranking = classify_image(model, pngs[i], "pixels", {"size": 8}, top=3)
        assert len(ranking) == 3
        confidences = [r["confidence"] for r in ranking]
        assert confidences == sorted(confidences, reverse=True)
        assert 0 < confidences[0] <= 1
        correct += ranking[0]["label"] == y[i]
    assert correct / len(held_out) >= 0.9


@pytest.mark.parametrize("algorithm", sorted(QUICK_PARAMS))
def test_every_algorithm_fits_saves_and_predicts(three_digits, algorithm):
    X, y = three_digits
    outcome = train_and_evaluate(X, y, algorithm=algorithm, params=QUICK_PARAMS[algorithm], test_size=0.25, seed=0)
    assert outcome.labels == ["0", "1", "2"]
    assert outcome.metrics["accuracy"] >= 0.8
    assert outcome.metrics["test_items"] == 15

    artifact = save_model(outcome.model)
    assert zipfile.is_zipfile(io.BytesIO(artifact))
    assert not any(name.endswith((".pkl", ".pickle")) for name in zipfile.ZipFile(io.BytesIO(artifact)).namelist())
    restored = load_model(artifact)
    assert type(restored) is type(outcome.model)
    assert restored.predict(X).tolist() == outcome.model.predict(X).tolist()

    rankings = predict_proba(restored, X)
    assert len(rankings) == len(X)
    for ranking, predicted in zip(rankings, restored.predict(X)):
        assert next(r["label"] for r in ranking) == predicted
        assert sorted(r["label"] for r in ranking) == ["0", "1", "2"]
        assert sum(r["confidence"] for r in ranking) == pytest.approx(1.0, abs=1e-4)


def test_linear_svm_confidences_for_two_classes(three_digits):
    X, y = three_digits
    two = [i for i, label in enumerate(y) if label in ("0", "1")]
    outcome = train_and_evaluate(X[two], [y[i] for i in two], algorithm="linear_svm", params={}, test_size=0.25, seed=0)
    model = outcome.model
    assert not hasattr(model, "predict_proba")
    margins = model.decision_function(X[two])
    for ranking, margin in zip(predict_proba(model, X[two]), margins):
        by_label = {r["label"]: r["confidence"] for r in ranking}
        assert by_label["1"] == pytest.approx(1 / (1 + np.exp(-margin)), abs=1e-5)
        assert ranking[0]["label"] == ("1" if margin > 0 else "0")


def test_training_is_reproducible_with_a_seed(three_digits):
    X, y = three_digits
    first = train_and_evaluate(X, y, algorithm="random_forest", params={"n_estimators": 10}, test_size=0.3, seed=7)
    again = train_and_evaluate(X, y, algorithm="random_forest", params={"n_estimators": 10}, test_size=0.3, seed=7)
    assert first.metrics == again.metrics


def _untrusted_transform(x):  # a function a model file must not be able to smuggle in
    return x


@pytest.mark.parametrize(
    "payload",
    [
        make_pipeline(FunctionTransformer(_untrusted_transform)),
        make_pipeline(FunctionTransformer(eval)),
    ],
)
def test_a_model_file_with_untrusted_types_is_refused(payload):
    artifact = skops.io.dumps(payload)
    with pytest.raises(InvalidRequest) as info:
        load_model(artifact)
    assert info.value.code == "untrusted_model"
    assert info.value.allowed == sorted(TRUSTED_TYPES)


def test_bytes_that_are_not_a_skops_classifier_are_refused(three_digits):
    X, y = three_digits
    model = train_and_evaluate(X, y, algorithm="logistic_regression", params={}, test_size=0.25, seed=0).model
    for data in (pickle.dumps(model), b"not a model", b""):
        with pytest.raises(InvalidRequest) as info:
            load_model(data)
        assert info.value.code == "invalid_model"
    with pytest.raises(InvalidRequest, match="not a fitted classifier"):
        load_model(skops.io.dumps({"weights": np.zeros(3)}))


def test_a_dataset_of_one_class_is_refused(three_digits):
    X, _ = three_digits
    with pytest.raises(InvalidRequest, match="at least 2") as info:
        train_and_evaluate(X, ["cat"] * len(X), algorithm="knn", params={}, test_size=0.25, seed=0)
    assert info.value.code == "too_few_classes"


def test_a_class_with_a_single_item_is_refused(three_digits):
    X, y = three_digits
    y = list(y)
    y[0] = "lonely"
    with pytest.raises(InvalidRequest, match="'lonely' \\(1\\)") as info:
        train_and_evaluate(X, y, algorithm="knn", params={}, test_size=0.25, seed=0)
    assert info.value.code == "too_few_items"


def test_a_test_set_too_small_for_every_class_is_refused():
    X = np.arange(40, dtype=np.float32).reshape(20, 2)
    y = [str(i % 10) for i in range(20)]  # 10 classes of 2 items: a 5% test set holds 1 item
    with pytest.raises(InvalidRequest, match="cannot hold each of the 10 classes"):
        train_and_evaluate(X, y, algorithm="knn", params={"n_neighbors": 1}, test_size=0.05, seed=0)


@pytest.mark.parametrize("test_size", [0.0, 0.9, "0.25", True])
def test_test_size_must_be_a_sensible_fraction(three_digits, test_size):
    X, y = three_digits
    with pytest.raises(InvalidRequest, match="test_size"):
        train_and_evaluate(X, y, algorithm="knn", params={}, test_size=test_size, seed=0)


def test_bad_algorithm_or_parameters_are_invalid_requests(three_digits):
    X, y = three_digits
    with pytest.raises(InvalidRequest) as info:
        train_and_evaluate(X, y, algorithm="xgboost", params={}, test_size=0.25, seed=0)
    assert info.value.code == "unknown_algorithm"
    with pytest.raises(InvalidRequest, match="'C' must be ≥"):
        train_and_evaluate(X, y, algorithm="logistic_regression", params={"C": 0}, test_size=0.25, seed=0)
    with pytest.raises(InvalidRequest, match="unknown parameter"):
        train_and_evaluate(X, y, algorithm="knn", params={"k": 3}, test_size=0.25, seed=0)
    with pytest.raises(InvalidRequest, match="n_neighbors=50 is more than the 45 training items"):
        train_and_evaluate(X, y, algorithm="knn", params={"n_neighbors": 50}, test_size=0.25, seed=0)


def test_mlp_early_stopping_needs_enough_items_per_class(three_digits):
    X, _y = three_digits
    with pytest.raises(InvalidRequest, match="early_stopping"):
        train_and_evaluate(
            X[:6], ["a", "b", "c"] * 2, algorithm="mlp", params={"early_stopping": True}, test_size=0.5, seed=0
        )


def test_every_algorithm_declares_ranges_for_its_parameters():
    assert ALGORITHMS.names() == [
        "knn",
        "linear_svm",
        "logistic_regression",
        "mlp",
        "naive_bayes",
        "random_forest",
        "sgd",
    ]
    for entry in ALGORITHMS:
        assert entry.runtime == "ml" and entry.description
        for param in entry.params:
            if param.type in (int, float):
                assert param.minimum is not None and param.maximum is not None, (entry.name, param.name)
            elif param.type is str:
                assert param.choices, (entry.name, param.name)
        # The declared defaults are valid values.
        assert entry.clean_params({}) == entry.clean_params(entry.clean_params({}))


def test_fit_warnings_are_kept_with_the_outcome(three_digits):
    X, y = three_digits
    outcome = train_and_evaluate(
        X, y, algorithm="mlp", params={"max_iter": 10, "early_stopping": False}, test_size=0.25, seed=0
    )
    assert any("Maximum iterations (10) reached" in message for message in outcome.warnings)


@pytest.mark.parametrize("algorithm", ["logistic_regression", "linear_svm", "random_forest"])
def test_balanced_class_weights_on_digit_like_labels(three_digits, algorithm):
    # Labels that look like numbers ("0", "1", "2") once broke the forest's "balanced" weights.
    X, y = three_digits
    keep = [i for i, label in enumerate(y) if label != "2" or i % 3 == 0]  # "2" becomes rare
    params = {"class_weight": "balanced", **({"n_estimators": 20} if algorithm == "random_forest" else {})}
    outcome = train_and_evaluate(
        X[keep], [y[i] for i in keep], algorithm=algorithm, params=params, test_size=0.3, seed=0
    )
    assert outcome.labels == ["0", "1", "2"]
    assert outcome.metrics["per_class"]["2"]["support"] >= 2
    assert outcome.metrics["accuracy"] >= 0.8
