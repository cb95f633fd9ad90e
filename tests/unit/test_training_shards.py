"""Training from feature shards (chalicelib.ml.training.train_from_shards): the stratified split
planned from counts, metrics from a streamed confusion matrix, and the three ways to fit — in
memory, incremental (partial_fit) and a bounded sample — on scikit-learn's digits cut into shards."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from chalicelib.errors import InvalidRequest
from chalicelib.ml.distributed import decode_shard, encode_shard
from chalicelib.ml.training import (
    ALGORITHMS,
    INCREMENTAL,
    allocate,
    clean_fit_options,
    metrics_from_confusion,
    plan_split,
    shard_roles,
    train_and_evaluate,
    train_from_shards,
)


@pytest.fixture(scope="module")
def digit_shards():
    """The 1797 digits as Parquet shards of 200 rows (bytes in a dict), with their counts."""
    X, y = load_digits(return_X_y=True)
    X, y = (X / 16).astype(np.float32), [str(v) for v in y]
    files, counts = {}, []
    for index, start in enumerate(range(0, len(y), 200)):
        rows = slice(start, start + 200)
        positions = list(range(len(y)))[rows]
        files[index] = encode_shard(positions, [f"{p}.png" for p in positions], y[rows], X[rows])
        counts.append((index, dict(Counter(y[rows]))))
    return files, counts, X, y


def load(files, reads=None):
    def load_shard(index):
        if reads is not None:
            reads.append(index)
        return decode_shard(files[index])

    return load_shard


def test_a_shard_keeps_its_rows():
    matrix = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    labels, decoded = decode_shard(encode_shard([5, 6, 7], ["a.png", "b.png", "c.png"], ["x", "y", "x"], matrix))
    assert labels.tolist() == ["x", "y", "x"] and decoded.dtype == np.float32 and np.array_equal(decoded, matrix)
    empty_labels, empty = decode_shard(encode_shard([], [], [], np.empty((0, 4), np.float32)))
    assert empty.shape == (0, 4) and empty_labels.tolist() == []


def test_allocate_is_proportional_and_never_exceeds_a_weight():
    assert allocate(10, [5, 5, 10]) == [3, 2, 5] or allocate(10, [5, 5, 10]) == [2, 3, 5]
    for total, weights in [(7, [1, 1, 1, 10]), (3, [1, 0, 2]), (0, [4, 4]), (12, [3, 4, 5])]:
        shares = allocate(total, weights)
        assert sum(shares) == total and all(0 <= s <= w for s, w in zip(shares, weights))
    assert allocate(5, [0, 0]) == [0, 0]


def test_the_planned_split_is_stratified_across_shards(digit_shards):
    _, counts, _, y = digit_shards
    plan = plan_split(counts, 0.25, sample_items=500)
    totals = Counter(y)
    for label, n in totals.items():
        held_out = sum(quotas[label][0] for quotas in plan.values() if label in quotas)
        sampled = sum(quotas[label][1] for quotas in plan.values() if label in quotas)
        assert held_out == round(0.25 * n)
        # The sample keeps the labels' share of the training items (± 1 from the rounding).
        assert abs(sampled - 500 * (n - held_out) / (len(y) - sum(round(0.25 * m) for m in totals.values()))) <= 1
    for index, shard_counts in counts:
        for label, (test, sample) in plan[index].items():
            assert test + sample <= shard_counts[label]
    # A label with two items keeps one on each side even when a shard has one of them.
    tiny = plan_split([(0, {"a": 1, "b": 30}), (1, {"a": 1, "b": 30})], 0.25, None)
    assert sum(q["a"][0] for q in tiny.values()) == 1


def test_shard_roles_follow_the_quotas_and_repeat(digit_shards):
    files, counts, _, _ = digit_shards
    plan = plan_split(counts, 0.25, 300)
    labels, _ = decode_shard(files[3])
    roles = shard_roles(labels, plan[3], seed=4, index=3)
    assert np.array_equal(roles, shard_roles(labels, plan[3], seed=4, index=3))
    for label, (test, sample) in plan[3].items():
        mine = roles[labels == label]
        assert (mine == 2).sum() == test and (mine == 1).sum() == sample
    assert not np.array_equal(roles, shard_roles(labels, plan[3], seed=5, index=3))


def test_metrics_from_a_confusion_matrix_are_scikit_learns():
    rng = np.random.default_rng(0)
    labels = ["a", "b", "c", "d"]
    truth = rng.choice(labels, 300).tolist()
    guess = [t if rng.random() < 0.6 else rng.choice(labels[:3]) for t in truth]  # "d" is never predicted
    from sklearn.metrics import confusion_matrix

    metrics = metrics_from_confusion(labels, confusion_matrix(truth, guess, labels=labels))
    precision, recall, f1, support = precision_recall_fscore_support(truth, guess, labels=labels, zero_division=0)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(truth, guess))
    assert metrics["macro_f1"] == pytest.approx(f1_score(truth, guess, labels=labels, average="macro", zero_division=0))
    for i, label in enumerate(labels):
        row = metrics["per_class"][label]
        assert (row["precision"], row["recall"], row["f1"], row["support"]) == pytest.approx(
            (precision[i], recall[i], f1[i], support[i])
        )


def test_the_incremental_algorithms_are_those_with_partial_fit():
    for entry in ALGORITHMS:
        estimator = entry.func(seed=0, **entry.clean_params({})).steps[-1][1]
        assert (entry.name in INCREMENTAL) == hasattr(estimator, "partial_fit"), entry.name


def test_fit_options_are_validated():
    assert clean_fit_options("sgd", None) == {"method": "auto", "sample_items": 50_000}
    with pytest.raises(InvalidRequest, match="cannot be fitted incrementally"):
        clean_fit_options("random_forest", {"method": "incremental"})
    with pytest.raises(InvalidRequest, match="sample_items"):
        clean_fit_options("knn", {"sample_items": 5})
    with pytest.raises(InvalidRequest, match="unknown fit option"):
        clean_fit_options("knn", {"batch": 3})


def test_shards_fitted_in_memory_match_the_in_memory_fit(digit_shards):
    files, counts, X, y = digit_shards
    reference = train_and_evaluate(X, y, algorithm="logistic_regression", params={}, test_size=0.25, seed=0)
    outcome = train_from_shards(counts, load(files), algorithm="logistic_regression", params={}, test_size=0.25, seed=0)
    assert outcome.metrics["fit"]["method"] == "in_memory"
    assert outcome.metrics["test_items"] == sum(round(0.25 * n) for n in Counter(y).values())
    assert outcome.metrics["train_items"] + outcome.metrics["test_items"] == len(y)
    assert abs(outcome.metrics["accuracy"] - reference.metrics["accuracy"]) <= 0.03
    assert np.array(outcome.metrics["confusion_matrix"]["matrix"]).sum() == outcome.metrics["test_items"]


@pytest.mark.parametrize(
    "algorithm, params", [("sgd", {}), ("mlp", {"hidden_units": 64, "epochs": 30}), ("naive_bayes", {})]
)
def test_an_incremental_fit_is_as_accurate_as_the_in_memory_one(digit_shards, algorithm, params):
    files, counts, _, _ = digit_shards
    reads: list[int] = []
    streamed = train_from_shards(
        counts,
        load(files, reads),
        algorithm=algorithm,
        params=params,
        test_size=0.25,
        seed=0,
        fit={"method": "incremental"},
    )
    in_memory = train_from_shards(counts, load(files), algorithm=algorithm, params=params, test_size=0.25, seed=0)
    print(f"{algorithm}: incremental {streamed.metrics['accuracy']:.3f}, in memory {in_memory.metrics['accuracy']:.3f}")
    fit = streamed.metrics["fit"]
    assert fit["method"] == "incremental" and fit["shards"] == len(files)
    assert "partial_fit" in fit["description"]
    # Every pass reads every shard: the scaler's, the epochs', the evaluation's.
    assert len(reads) == len(files) * (fit["epochs"] + 2)
    assert streamed.metrics["accuracy"] >= in_memory.metrics["accuracy"] - 0.03
    assert streamed.metrics["test_items"] == in_memory.metrics["test_items"]


def test_an_algorithm_without_partial_fit_is_fitted_on_a_bounded_sample(digit_shards):
    files, counts, _, y = digit_shards
    outcome = train_from_shards(
        counts,
        load(files),
        algorithm="random_forest",
        params={"n_estimators": 30},
        test_size=0.25,
        seed=0,
        fit={"sample_items": 400},
    )
    fit = outcome.metrics["fit"]
    assert fit["method"] == "sample" and 400 <= fit["sample_items"] <= 410
    assert fit["train_items"] == outcome.metrics["train_items"] > 1000
    assert "sample of 4" in fit["description"]
    # Evaluated on every held-out item, not only on as many as the sample.
    assert outcome.metrics["test_items"] == sum(round(0.25 * n) for n in Counter(y).values())
    assert outcome.metrics["accuracy"] >= 0.85
    # Auto picks the sample for a forest and partial_fit for sgd when the training items exceed it.
    sgd = train_from_shards(
        counts, load(files), algorithm="sgd", params={}, test_size=0.25, seed=0, fit={"sample_items": 400}
    )
    assert sgd.metrics["fit"]["method"] == "incremental"


def test_a_class_lost_to_failures_is_a_clear_refusal():
    with pytest.raises(InvalidRequest, match="at least 2 items"):
        train_from_shards([(0, {"a": 20, "b": 1})], lambda i: None, algorithm="sgd", params={}, test_size=0.25, seed=0)
