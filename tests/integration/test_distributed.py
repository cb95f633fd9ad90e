"""Feature extraction and batches on a real Dask cluster of two worker processes."""

import functools
import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from chalicelib.errors import InvalidRequest
from chalicelib.ml.distributed import default_partitions, extract_features_parallel, run_batch, split_partitions
from chalicelib.ml.features import extract
from chalicelib.ml.training import train_and_evaluate

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.timeout(180)


def read_under(root: str, key: str) -> bytes:
    """load_bytes for the workers: module-level, bound to a folder with functools.partial."""
    return (Path(root) / key).read_bytes()


@pytest.fixture(scope="module")
def cluster_client():
    with (
        distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address="127.0.0.1:0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory):
    """The 1797 digits as PNGs in one folder per digit, plus planted bad files; returns (root, items, bad keys)."""
    root = tmp_path_factory.mktemp("digits")
    bunch = load_digits()
    items = []
    for i, (image, target) in enumerate(zip(bunch.images, bunch.target)):
        key = f"{target}/{i:04d}.png"
        (root / str(target)).mkdir(exist_ok=True)
        Image.fromarray(np.round(image * 255 / 16).astype(np.uint8), "L").save(root / key)
        items.append((key, str(target)))
    good_png = (root / items[0][0]).read_bytes()
    bad = {
        "3/truncated.png": good_png[: len(good_png) // 2],
        "5/notes.png": b"these are not the pixels you are looking for\n" * 4,
        "7/empty.png": b"",
    }
    for key, data in bad.items():
        (root / key).write_bytes(data)
    bad_items = [(key, key.split("/")[0]) for key in bad] + [("9/missing.png", "9")]
    # Bad files among the good ones, in several partitions.
    for n, bad_item in enumerate(bad_items):
        items.insert(300 + 400 * n, bad_item)
    return str(root), items, {key for key, _ in bad_items}


def test_digit_features_on_two_workers(cluster_client, digit_folder):
    root, items, bad_keys = digit_folder
    progress = []
    X, y, failed = extract_features_parallel(
        cluster_client,
        items,
        functools.partial(read_under, root),
        "pixels",
        {"size": 8},
        partitions=8,
        on_progress=lambda done, total: progress.append((done, total)),
    )

    assert X.shape == (1797, 64) and X.dtype == np.float32
    good = [(key, label) for key, label in items if key not in bad_keys]
    assert y == [label for _, label in good]
    # Rows come back in the order of the items, whichever worker made them.
    for row in (0, 555, 1796):
        expected = extract((Path(root) / good[row][0]).read_bytes(), "pixels", {"size": 8})
        assert np.array_equal(X[row], expected)

    reasons = dict(failed)
    assert set(reasons) == bad_keys
    assert "truncated" in reasons["3/truncated.png"] or "damaged" in reasons["3/truncated.png"]
    assert "not a supported image" in reasons["5/notes.png"]
    assert "empty" in reasons["7/empty.png"]
    assert reasons["9/missing.png"].startswith("FileNotFoundError")

    total = len(items)
    assert progress[0] == (0, total) and progress[-1] == (total, total)
    assert len(progress) == 1 + 8
    done = [d for d, _ in progress]
    assert done == sorted(done) and len(set(done)) == len(done)

    outcome = train_and_evaluate(X, y, algorithm="logistic_regression", params={}, test_size=0.25, seed=0)
    assert outcome.metrics["accuracy"] >= 0.95


def write_under(root: str, index: int, data: bytes) -> None:
    """write_shard for the workers: module-level, bound to a folder with functools.partial."""
    (Path(root) / f"part-{index:05d}.parquet").write_bytes(data)


def test_digit_features_as_shards_on_two_workers(cluster_client, digit_folder, tmp_path):
    from chalicelib.ml.distributed import IN_FLIGHT_PER_THREAD, decode_shard, extract_feature_shards

    root, items, bad_keys = digit_folder
    pulled, progress = [], []

    def chunks():  # a generator, as the job's database pages: read only as partitions finish
        for start in range(0, len(items), 100):
            pulled.append(start)
            yield items[start : start + 100]

    def on_progress(done, total):
        progress.append((done, total, len(pulled)))

    shards = extract_feature_shards(
        cluster_client,
        chunks(),
        total=len(items),
        load_bytes=functools.partial(read_under, root),
        write_shard=functools.partial(write_under, str(tmp_path)),
        feature="pixels",
        params={"size": 8},
        on_progress=on_progress,
    )
    files = sorted(tmp_path.glob("part-*.parquet"))
    assert len(files) == len(shards.shards) == -(-len(items) // 100)
    assert [shard.index for shard in shards.shards] == list(range(len(files)))
    assert shards.items == len(items) and shards.failed == len(bad_keys)
    assert {key for key, _ in shards.failed_examples} == bad_keys
    good = [(key, label) for key, label in items if key not in bad_keys]
    counts: dict[str, int] = {}
    for shard in shards.shards:
        for label, n in shard.label_counts.items():
            counts[label] = counts.get(label, 0) + n
    assert counts == {label: sum(1 for _, lab in good if lab == label) for label in counts}
    # The format (pyarrow, DuckDB, Spark read it): a row per item that worked, with its key and label.
    tables = [pq.read_table(path) for path in files]
    assert tables[0].column_names == ["position", "key", "label", "features"]
    assert tables[0].schema.field("features").type.list_size == 64
    assert sum(table.num_rows for table in tables) == len(good)
    first = tables[0].slice(0, 1).to_pylist()[0]
    assert (first["key"], first["label"]) == good[0]
    # A shard's rows are the features a local extraction gives, with their labels.
    labels, matrix = decode_shard(files[5].read_bytes())
    expected = [item for item in items[500:600] if item[0] not in bad_keys]
    assert labels.tolist() == [label for _, label in expected]
    assert np.array_equal(matrix[7], extract((Path(root) / expected[7][0]).read_bytes(), "pixels", {"size": 8}))
    # The driver never read more than the partitions in flight ahead of those finished.
    limit = 2 * IN_FLIGHT_PER_THREAD
    assert all(chunks_read * 100 <= done + (limit + 1) * 100 for done, _, chunks_read in progress)
    assert progress[-1][0] == len(items)


def test_hog_features_on_the_cluster_match_local_extraction(cluster_client, digit_folder):
    root, items, bad_keys = digit_folder
    some = [item for item in items if item[0] not in bad_keys][:40]
    params = {"size": 16, "cell_size": 4, "block_size": 2, "orientations": 9}
    X, y, failed = extract_features_parallel(
        cluster_client, some, functools.partial(read_under, root), "hog", params, partitions=3
    )
    local = np.stack([extract((Path(root) / key).read_bytes(), "hog", params) for key, _ in some])
    assert failed == [] and np.array_equal(X, local) and y == [label for _, label in some]


def test_bad_feature_parameters_fail_before_anything_is_submitted(cluster_client, digit_folder):
    root, items, _ = digit_folder
    with pytest.raises(InvalidRequest, match="does not fit"):
        extract_features_parallel(
            cluster_client,
            items,
            functools.partial(read_under, root),
            "hog",
            {"size": 8, "cell_size": 8, "block_size": 2},
            partitions=4,
        )


def test_no_items_give_an_empty_matrix(cluster_client):
    progress = []
    X, y, failed = extract_features_parallel(
        cluster_client,
        [],
        functools.partial(read_under, "/nonexistent"),
        "color_histogram",
        {"bins": 8},
        partitions=4,
        on_progress=lambda d, t: progress.append((d, t)),
    )
    assert X.shape == (0, 24) and y == [] and failed == [] and progress == [(0, 0)]


def test_run_batch_yields_every_item_once_with_its_outcome(cluster_client):
    items = [4.0, 9.0, -1.0, 16.0, 25.0, -4.0, 36.0]
    outcomes = list(run_batch(cluster_client, items, math.sqrt, partitions=3))
    assert sorted(o.item for o in outcomes) == sorted(items)
    by_item = {o.item: o for o in outcomes}
    for value in (4.0, 9.0, 16.0, 25.0, 36.0):
        assert by_item[value].ok and by_item[value].result == math.sqrt(value)
    for value in (-1.0, -4.0):
        assert not by_item[value].ok and by_item[value].error == "ValueError: math domain error"


def test_stopping_a_batch_early_cancels_the_rest(cluster_client):
    batch = run_batch(cluster_client, list(range(100)), float, partitions=10)
    first = next(batch)
    batch.close()
    assert first.ok and first.result == float(first.item)
    # The cluster is still usable afterwards.
    assert sum(o.result for o in run_batch(cluster_client, [1, 2, 3], float, partitions=2)) == 6.0


def test_partitions():
    assert split_partitions(list(range(10)), 3) == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert split_partitions([1, 2], 5) == [[1], [2]]
    assert split_partitions([], 4) == []
    with pytest.raises(ValueError):
        split_partitions([1], 0)


def test_default_partitions_follow_the_cluster(cluster_client):
    assert default_partitions(cluster_client, 10_000) == 2 * 4  # 2 worker threads, 4 each
    assert default_partitions(cluster_client, 20) == 2  # at least 8 items per partition
    assert default_partitions(cluster_client, 1) == 1


def test_training_on_a_worker_returns_a_skops_artifact(cluster_client, digit_folder):
    from chalicelib.ml.distributed import train_on_cluster
    from chalicelib.ml.training import load_model, predict_proba

    root, items, bad_keys = digit_folder
    good = [item for item in items if item[0] not in bad_keys]
    X = np.stack([extract((Path(root) / key).read_bytes(), "pixels", {"size": 8}) for key, _ in good])
    y = [label for _, label in good]
    trained = train_on_cluster(
        cluster_client, X, y, algorithm="logistic_regression", params={"C": 1.0}, test_size=0.25, seed=0
    )
    assert trained.metrics["accuracy"] >= 0.95 and trained.labels == [str(d) for d in range(10)]
    model = load_model(trained.artifact)
    assert predict_proba(model, X[:1])[0][0]["label"] == y[0]


def test_training_errors_keep_their_code_across_the_cluster(cluster_client):
    from chalicelib.ml.distributed import train_on_cluster

    X = np.random.default_rng(0).random((40, 4), dtype=np.float32)
    with pytest.raises(InvalidRequest) as info:
        train_on_cluster(cluster_client, X, ["a"] * 40, algorithm="knn", params={}, test_size=0.25, seed=0)
    assert info.value.code == "too_few_classes"
    # Found only on the worker, after the split: 30 training items for 35 neighbours.
    with pytest.raises(InvalidRequest, match="n_neighbors=35") as info:
        train_on_cluster(
            cluster_client, X, ["a", "b"] * 20, algorithm="knn", params={"n_neighbors": 35}, test_size=0.25, seed=0
        )
    assert info.value.code == "invalid_parameter"
