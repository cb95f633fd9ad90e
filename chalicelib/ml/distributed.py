"""Dask task graphs for training jobs and batches: work in partitions, results as they complete.

No storage or database here: the caller passes `load_bytes(key) -> bytes` and receives plain
arrays and outcomes. Everything sent to the workers is pickled, so `load_bytes` and `fn` must be
picklable: a module-level function, or a `functools.partial` of one (e.g.
`functools.partial(read_object, bucket)`), never a lambda, a closure, or a bound method of an
object holding a database session or a boto3 client. A per-item failure (a damaged image, a
missing object) is reported with the item and never fails the whole job.

dask and distributed are imported inside the functions: the api Lambda has neither.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from distributed import Client

# Enough partitions per worker thread that a slow partition does not leave the others idle
# and progress moves in small steps, few enough that scheduling overhead stays negligible.
PARTITIONS_PER_THREAD = 4
MIN_ITEMS_PER_PARTITION = 8


@dataclass(frozen=True)
class ItemOutcome:
    item: Any
    ok: bool
    result: Any = None
    error: str | None = None


@dataclass(frozen=True)
class TrainedModel:
    """A model trained on a worker: its skops artifact, labels, held-out metrics, fit warnings."""

    artifact: bytes
    labels: list[str]
    metrics: dict
    warnings: list[str]


def default_partitions(client: Client, n_items: int) -> int:
    """A partition count for `n_items` on this cluster: a few per worker thread."""
    threads = sum(client.nthreads().values()) or 1
    by_size = max(1, n_items // MIN_ITEMS_PER_PARTITION)
    return max(1, min(threads * PARTITIONS_PER_THREAD, by_size))


def split_partitions(items: Sequence, partitions: int) -> list[list]:
    """Contiguous chunks of near-equal length (at most one item apart), in order."""
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, got {partitions}")
    items = list(items)
    count = min(partitions, len(items))
    if count == 0:
        return []
    size, extra = divmod(len(items), count)
    chunks, start = [], 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        chunks.append(items[start:end])
        start = end
    return chunks


def describe_failure(exc: BaseException) -> str:
    """A one-line reason for a failed item; an image rejection's message is already for users."""
    from chalicelib.errors import InvalidRequest
    from chalicelib.imaging.imageio import ImageRejected

    if isinstance(exc, (ImageRejected, InvalidRequest)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _extract_rows(
    chunk: Sequence[tuple], load_bytes: Callable[[str], bytes], feature: str, params: dict
) -> tuple[list[tuple], np.ndarray, list[tuple[int, str, str]]]:
    """Runs on a worker: for items (position, key, …), (the items that worked, their float32
    feature rows, [(position, key, reason)] of the others)."""
    import numpy as np

    from chalicelib.ml.features import extract, feature_length

    worked, rows, failed = [], [], []
    for item in chunk:
        position, key = item[0], item[1]
        try:
            rows.append(extract(load_bytes(key), feature, params))
            worked.append(item)
        except Exception as exc:  # one bad item is a result, not a failed partition
            failed.append((position, key, describe_failure(exc)))
    matrix = np.stack(rows) if rows else np.empty((0, feature_length(feature, params)), dtype=np.float32)
    return worked, matrix.astype(np.float32, copy=False), failed


def _extract_partition(
    chunk: list[tuple[int, str]], *, load_bytes: Callable[[str], bytes], feature: str, params: dict
) -> tuple[list[int], np.ndarray, list[tuple[int, str, str]]]:
    """Runs on a worker: (positions that worked, their feature rows, [(position, key, reason)])."""
    worked, matrix, failed = _extract_rows(chunk, load_bytes, feature, params)
    return [position for position, _ in worked], matrix, failed


def extract_features_parallel(
    client: Client,
    items: Sequence[tuple[str, str]],
    load_bytes: Callable[[str], bytes],
    feature: str,
    params: dict | None,
    partitions: int,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, list[str], list[tuple[str, str]]]:
    """Feature vectors of (key, label) items, computed in `partitions` tasks on the cluster.

    Returns (X, y, failed): X has one float32 row per item that worked, in the order of
    `items`, y their labels, failed the [(key, reason)] of the items that did not.
    `on_progress(done, total)` is called with 0 first, then after each partition completes,
    with `done` never decreasing and reaching `total`. Raises InvalidRequest for an unknown
    feature or bad parameters before anything is submitted.
    """
    import numpy as np
    from distributed import as_completed

    from chalicelib.ml.features import clean_feature_params, feature_length

    clean = clean_feature_params(feature, params)
    length = feature_length(feature, clean)
    total = len(items)
    if on_progress:
        on_progress(0, total)
    if total == 0:
        return np.empty((0, length), dtype=np.float32), [], []

    chunks = split_partitions([(position, key) for position, (key, _) in enumerate(items)], partitions)
    futures = client.map(_extract_partition, chunks, load_bytes=load_bytes, feature=feature, params=clean, pure=False)
    sizes = {future.key: len(chunk) for future, chunk in zip(futures, chunks)}
    rows = np.zeros((total, length), dtype=np.float32)
    worked = np.zeros(total, dtype=bool)
    failed: list[tuple[int, str, str]] = []
    done = 0
    try:
        for future in as_completed(futures):
            positions, matrix, chunk_failed = future.result()
            rows[positions] = matrix
            worked[positions] = True
            failed.extend(chunk_failed)
            done += sizes[future.key]
            future.release()
            if on_progress:
                on_progress(done, total)
    finally:
        client.cancel([future for future in futures if not future.done()])

    kept = np.flatnonzero(worked)
    labels = [items[position][1] for position in kept.tolist()]
    return rows[kept], labels, [(key, reason) for _, key, reason in sorted(failed)]


# --- features as Parquet shards: the driver holds counts, never the features ---------------------

# A shard is written by one task: small enough that a worker holds it easily (2,048 HOG vectors of
# 64 px are 14 MB), large enough that a million items are a few hundred files.
MAX_SHARD_ITEMS = 2048
# Partitions submitted ahead of those finished: the workers stay busy while the driver holds a
# bounded number of item lists, however long the dataset.
IN_FLIGHT_PER_THREAD = 3
FAILED_EXAMPLES = 20


@dataclass(frozen=True)
class Shard:
    """One written shard: its index, the items that worked by label, the first few that failed."""

    index: int
    label_counts: dict[str, int]
    failed: int
    failed_examples: list[tuple[int, str, str]]  # (position, key, reason)


@dataclass(frozen=True)
class FeatureShards:
    shards: list[Shard]
    length: int  # of each feature vector
    items: int
    failed: int
    failed_examples: list[tuple[str, str]]  # (key, reason) of the first failed items, in dataset order

    def counts(self) -> list[tuple[int, dict[str, int]]]:
        """(index, label counts) of each shard, what training.train_from_shards plans with."""
        return [(shard.index, shard.label_counts) for shard in self.shards]


def shard_items(client: Client, n_items: int) -> int:
    """Items per shard for `n_items` on this cluster: a few partitions per worker thread, at most MAX_SHARD_ITEMS."""
    return max(1, min(MAX_SHARD_ITEMS, -(-n_items // default_partitions(client, n_items))))


def encode_shard(positions: list[int], keys: list[str], labels: list[str], matrix: np.ndarray) -> bytes:
    """A Parquet file: position, key, label and the feature vector (fixed-size list of float32) per row."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    length = matrix.shape[1]
    features = pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1), type=pa.float32()), length)
    table = pa.table(
        {
            "position": pa.array(positions, type=pa.int64()),
            "key": pa.array(keys, type=pa.string()),
            "label": pa.array(labels, type=pa.string()),
            "features": features,
        }
    )
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd")
    return out.getvalue()


def decode_shard(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(labels, float32 matrix) of a shard written by encode_shard."""
    import io

    import numpy as np
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(data), columns=["label", "features"])
    column = table.column("features").combine_chunks()
    length = column.type.list_size
    matrix = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(-1, length)
    return np.array(table.column("label").to_pylist(), dtype=str), matrix


def _extract_shard(
    chunk: list[tuple[int, str, str]],
    *,
    index: int,
    load_bytes: Callable[[str], bytes],
    write_shard: Callable[[int, bytes], None],
    prepare: Callable[[], Any] | None,
    feature: str,
    params: dict,
) -> Shard:
    """Runs on a worker: the chunk's features written as shard `index`; only counts go back."""
    from collections import Counter

    if prepare is not None:
        prepare()  # e.g. the backbone's artifact into this worker's model cache
    worked, matrix, failed = _extract_rows(chunk, load_bytes, feature, params)
    positions, keys, labels = ([item[i] for item in worked] for i in range(3))
    write_shard(index, encode_shard(positions, keys, labels, matrix))
    return Shard(index, dict(Counter(labels)), len(failed), failed[:FAILED_EXAMPLES])


def extract_feature_shards(
    client: Client,
    chunks: Iterable[Sequence[tuple[str, str]]],
    *,
    total: int,
    load_bytes: Callable[[str], bytes],
    write_shard: Callable[[int, bytes], None],
    feature: str,
    params: dict | None,
    prepare: Callable[[], Any] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> FeatureShards:
    """Features of (key, label) items written as Parquet shards by the workers, one per chunk.

    `chunks` may be a generator (e.g. pages of a database query): it is read as partitions
    finish, at most IN_FLIGHT_PER_THREAD per worker thread ahead, so the driver never holds the
    whole list of items nor any feature. `write_shard(index, parquet)` and `prepare()` (run once
    per partition before extracting, e.g. to fetch a backbone) run on the workers and must be
    picklable. `on_progress(done, total)` as extract_features_parallel calls it. Raises
    InvalidRequest for an unknown feature or bad parameters before anything is submitted.
    """
    import heapq

    from distributed import as_completed

    from chalicelib.ml.features import clean_feature_params, feature_length

    clean = clean_feature_params(feature, params)
    length = feature_length(feature, clean)
    if on_progress:
        on_progress(0, total)
    limit = max(1, sum(client.nthreads().values()) * IN_FLIGHT_PER_THREAD)
    source = iter(chunks)
    position = 0
    sizes: dict = {}  # future key → items in its partition
    shards: list[Shard] = []
    examples: list[tuple[int, str, str]] = []
    done = failed = 0
    running = as_completed()
    pending: set = set()

    def submit_next() -> bool:
        nonlocal position
        chunk = next(source, None)
        if chunk is None:
            return False
        numbered = [(position + i, key, label) for i, (key, label) in enumerate(chunk)]
        position += len(numbered)
        future = client.submit(
            _extract_shard,
            numbered,
            index=len(sizes),
            load_bytes=load_bytes,
            write_shard=write_shard,
            prepare=prepare,
            feature=feature,
            params=clean,
            pure=False,
        )
        sizes[future.key] = len(numbered)
        pending.add(future)
        running.add(future)
        return True

    try:
        while len(sizes) < limit and submit_next():
            pass
        for future in running:
            shard = future.result()
            pending.discard(future)
            future.release()
            shards.append(shard)
            failed += shard.failed
            examples = heapq.nsmallest(FAILED_EXAMPLES, examples + shard.failed_examples)
            done += sizes[future.key]
            if on_progress:
                on_progress(done, max(total, done))
            submit_next()
    finally:
        client.cancel([future for future in pending if not future.done()])
    shards.sort(key=lambda shard: shard.index)
    return FeatureShards(shards, length, position, failed, [(key, reason) for _, key, reason in examples])


def _run_partition(chunk: list, *, fn: Callable[[Any], Any]) -> list[ItemOutcome]:
    outcomes = []
    for item in chunk:
        try:
            outcomes.append(ItemOutcome(item, True, fn(item)))
        except Exception as exc:  # one bad item is a result, not a failed partition
            outcomes.append(ItemOutcome(item, False, error=describe_failure(exc)))
    return outcomes


def run_partitions(
    client: Client,
    partitions: Iterable[list],
    fn: Callable[[list], Any],
    *,
    max_in_flight: int,
    key: Callable[[list], str] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[tuple[list, Any]]:
    """Run `fn(partition)` on the cluster for each partition, with at most `max_in_flight` submitted
    and not yet consumed; yield (partition, result) as each completes — the result is the exception
    when `fn` raised (or its worker died more often than the scheduler's allowed-failures).

    `partitions` is consumed lazily, one for each that completes, so the driver holds at most
    `max_in_flight` partitions and futures, however many there are (a generator of keyset pages
    serves a million items in bounded memory). `key(partition)` names each submission (Dask runs a
    key once, so a resubmitted driver does not double a partition still running). Once
    `should_stop()` (asked after each completion) is true, nothing more is submitted and the
    partitions in flight are waited for. Stopping the iteration early cancels those in flight.
    """
    from distributed import as_completed

    if max_in_flight < 1:
        raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
    pending = iter(partitions)
    in_flight: dict[Any, tuple[Any, list]] = {}  # key → (future, partition)
    completed = as_completed()

    def submit_next() -> None:
        partition = next(pending, None)
        if partition is None:
            return
        options = {"key": key(partition)} if key is not None else {}
        future = client.submit(fn, partition, pure=False, **options)
        in_flight[future.key] = (future, partition)
        completed.add(future)

    for _ in range(max_in_flight):
        submit_next()
    stopped = False
    try:
        for future in completed:
            _, partition = in_flight.pop(future.key)
            try:
                result = future.result()
            except Exception as exc:  # the caller decides what a lost partition means
                result = exc
            future.release()
            yield partition, result
            stopped = stopped or bool(should_stop and should_stop())
            if not stopped:
                submit_next()
    finally:
        client.cancel([future for future, _ in in_flight.values()])
        completed.clear()


def run_batch(client: Client, items: Iterable, fn: Callable[[Any], Any], partitions: int) -> Iterator[ItemOutcome]:
    """Apply `fn` to every item in `partitions` tasks; yield each item's outcome as its partition completes.

    Outcomes come partition by partition in completion order, not in the order of `items`.
    Stopping the iteration early cancels the partitions still running.
    """
    import functools

    chunks = split_partitions(list(items), partitions)
    for _, outcomes in run_partitions(
        client, chunks, functools.partial(_run_partition, fn=fn), max_in_flight=max(1, len(chunks))
    ):
        if isinstance(outcomes, BaseException):
            raise outcomes
        yield from outcomes


def _train_and_save(
    X: np.ndarray, y: list, *, algorithm: str, params: dict | None, test_size: float, seed: int
) -> tuple:
    from chalicelib.errors import InvalidRequest
    from chalicelib.ml.training import save_model, train_and_evaluate

    try:
        outcome = train_and_evaluate(X, y, algorithm=algorithm, params=params, test_size=test_size, seed=seed)
    except InvalidRequest as exc:
        # Returned, not raised: a pickled exception keeps only its message, not its code.
        return "invalid", (str(exc), exc.code, exc.allowed)
    return "ok", TrainedModel(save_model(outcome.model), outcome.labels, outcome.metrics, outcome.warnings)


def train_on_cluster(
    client: Client, X: np.ndarray, y: Sequence, *, algorithm: str, params: dict | None, test_size: float, seed: int
) -> TrainedModel:
    """`training.train_and_evaluate` on a worker; the model comes back as skops bytes.

    The caller needs neither scikit-learn nor skops. Raises InvalidRequest as
    train_and_evaluate does (with its code), before or after the fit.
    """
    from chalicelib.errors import InvalidRequest
    from chalicelib.ml.training import check_split, clean_algorithm_params

    # Cheap checks here, so a bad request does not wait for a worker.
    clean = clean_algorithm_params(algorithm, params)
    check_split([str(label) for label in y], test_size)
    [X_future] = client.scatter([X])
    status, value = client.submit(
        _train_and_save,
        X_future,
        list(y),
        algorithm=algorithm,
        params=clean,
        test_size=test_size,
        seed=seed,
        pure=False,
    ).result()
    if status == "invalid":
        message, code, allowed = value
        raise InvalidRequest(message, code=code, allowed=allowed)
    return value
