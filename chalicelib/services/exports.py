"""Analytics-ready exports: results as Hive-partitioned Parquet under exports/results/.

    exports/results/owner_id=<user>/export=<batch-12 | account-20261201T201500Z>/analysis=<name>/part-0.parquet

One row per image and analysis (a processing task and its result; a failed task is a row with its
error). The common fields are typed columns; the result's data and the task's parameters are JSON
text. The partition keys are in the path only (Hive's convention), so Athena (the Glue table
`results` in infra/aws/storage.yaml), Spark, DuckDB and `pyarrow.dataset` read the tree as one table,
filtering partitions by path. Rows leave PostgreSQL through COPY, TASKS_PER_COPY tasks at a time, and are
parsed by Arrow: memory stays bounded by the chunk whatever the size of the account. Runs on the Dask workers (pyarrow is not in the api function).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chalicelib import storage
from chalicelib.db.session import session_scope

ROWS_PER_BATCH = 50_000
TASKS_PER_COPY = 100_000  # tasks per COPY chunk: ~15 MB of CSV held at a time
PARTITION_KEYS = ("owner_id", "export", "analysis")


def result_schema():
    """The columns of every part file (the partition keys are added by the path)."""
    import pyarrow as pa

    return pa.schema(
        [
            ("image_id", pa.int64()),
            ("image_key", pa.string()),
            ("image_sha256", pa.string()),
            ("image_format", pa.string()),
            ("image_width", pa.int32()),
            ("image_height", pa.int32()),
            ("task_id", pa.int64()),
            ("batch_id", pa.int64()),
            ("kind", pa.string()),
            ("model_id", pa.int64()),
            ("status", pa.string()),
            ("error", pa.string()),
            ("label", pa.string()),
            ("confidence", pa.float64()),
            ("output_key", pa.string()),
            ("duration_ms", pa.int32()),
            ("finished_at", pa.timestamp("us", tz="UTC")),
            ("params", pa.string()),
            ("data", pa.string()),
        ]
    )


def dataset_schema():
    """The table a reader sees: the file columns and the partition keys."""
    import pyarrow as pa

    return (
        result_schema()
        .append(pa.field("owner_id", pa.int64()))
        .append(pa.field("export", pa.string()))
        .append(pa.field("analysis", pa.string()))
    )


def export_batch(batch_id: int) -> str:
    """Write the batch's results; returns the key of its (first) part file."""
    from chalicelib.db.tables import Batch, ProcessingTask

    with session_scope() as session:
        owner_id = session.get_one(Batch, batch_id).owner_id
    keys = write_export(owner_id, f"batch-{batch_id}", ProcessingTask.batch_id == batch_id)
    with session_scope() as session:
        session.get_one(Batch, batch_id).export_key = keys[0]
    return keys[0]


def export_account(owner_id: int, *, at: datetime | None = None) -> str:
    """Write every result of the user's images (uploads' analyses, tasks, batches); returns the export's prefix."""
    from chalicelib.db.tables import ProcessingTask

    export = f"account-{(at or datetime.now(UTC)):%Y%m%dT%H%M%SZ}"
    write_export(owner_id, export, ProcessingTask.owner_id == owner_id)
    return storage.results_export_prefix(owner_id, export)


def write_export(owner_id: int, export: str, which) -> list[str]:
    """Stream the tasks matching `which` into Parquet under the export's prefix (replacing an earlier run's files)."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    prefix = storage.results_export_prefix(owner_id, export)
    storage.delete_under(prefix)
    partitioning = ds.partitioning(pa.schema([("analysis", pa.string())]), flavor="hive")
    with tempfile.TemporaryDirectory(prefix="pixelake-export-") as tmp:
        ds.write_dataset(
            _record_batches(which),
            tmp,
            schema=result_schema().append(pa.field("analysis", pa.string())),
            format="parquet",
            partitioning=partitioning,
            basename_template="part-{i}.parquet",
            file_options=ds.ParquetFileFormat().make_write_options(compression="zstd"),
            max_rows_per_group=ROWS_PER_BATCH,
            existing_data_behavior="overwrite_or_ignore",
        )
        keys = []
        for path in sorted(Path(tmp).rglob("*.parquet")):
            key = prefix + path.relative_to(tmp).as_posix()
            storage.put(key, path.read_bytes(), "application/vnd.apache.parquet")
            keys.append(key)
    if not keys:  # nothing to export: an empty file keeps the export (and its schema) readable
        keys.append(_put_empty(prefix))
    return keys


def _put_empty(prefix: str) -> str:
    import io

    import pyarrow.parquet as pq

    out = io.BytesIO()
    pq.write_table(result_schema().empty_table(), out)
    key = f"{prefix}analysis=none/part-0.parquet"
    storage.put(key, out.getvalue(), "application/vnd.apache.parquet")
    return key


def _record_batches(which) -> Iterator[Any]:
    import pyarrow as pa
    from sqlalchemy import BigInteger, Text, cast, func, select

    from chalicelib.db.tables import Image, ProcessingTask, Result

    schema = result_schema().append(pa.field("analysis", pa.string()))
    # The JSON columns come as PostgreSQL's own text, and the timestamp as microseconds since the
    # epoch: parsing them into Python objects and back was most of the export's time.
    query = (
        select(
            ProcessingTask.image_id,
            Image.key,
            Image.sha256,
            Image.format,
            Image.width,
            Image.height,
            ProcessingTask.id,
            ProcessingTask.batch_id,
            ProcessingTask.kind,
            ProcessingTask.model_id,
            ProcessingTask.status,
            ProcessingTask.error,
            Result.label,
            Result.confidence,
            Result.output_key,
            ProcessingTask.duration_ms,
            cast(func.extract("epoch", ProcessingTask.finished_at) * 1_000_000, BigInteger),
            cast(ProcessingTask.params, Text),
            cast(Result.data, Text),
            ProcessingTask.operation,
        )
        .join(Image, Image.id == ProcessingTask.image_id)
        .outerjoin(Result, Result.task_id == ProcessingTask.id)
        .where(which)
        .order_by(ProcessingTask.id, Result.id)
    )
    # Tasks are taken TASKS_PER_COPY at a time by id (keyset): each COPY's CSV is parsed in memory,
    # so the chunk, not the export, bounds the memory.
    last_id = 0
    while True:
        upper = session_scalar(
            select(ProcessingTask.id)
            .where(which, ProcessingTask.id > last_id)
            .order_by(ProcessingTask.id)
            .offset(TASKS_PER_COPY - 1)
            .limit(1)
        )
        chunk = query.where(ProcessingTask.id > last_id)
        if upper is not None:
            chunk = chunk.where(ProcessingTask.id <= upper)
        yield from _copy_batches(chunk, schema)
        if upper is None:
            return
        last_id = upper


def session_scalar(statement):
    with session_scope() as session:
        return session.scalar(statement)


def _copy_batches(query, schema) -> Iterator[Any]:
    """Run the query as PostgreSQL `COPY … TO STDOUT (FORMAT csv)` and parse it with Arrow's CSV reader:
    no Python object per row (pg8000 decoding each row in Python was the export's bottleneck)."""
    import io

    import pyarrow as pa
    from pyarrow import csv
    from sqlalchemy.dialects import postgresql

    # The query's only parameters are ids (integers): safe to render literally.
    sql = str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    names = schema.names
    finished_at = names.index("finished_at")
    raw_types = {name: (pa.int64() if i == finished_at else schema.field(i).type) for i, name in enumerate(names)}
    spool = io.BytesIO()
    with session_scope() as session:
        driver = session.connection().connection.driver_connection
        assert driver is not None  # a checked-out connection always has its pg8000 connection
        driver.cursor().execute(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)", stream=spool)
    if not spool.tell():
        return
    spool.seek(0)
    table = csv.read_csv(
        spool,
        read_options=csv.ReadOptions(column_names=names),
        parse_options=csv.ParseOptions(newlines_in_values=True),
        # COPY writes NULL as an empty unquoted field and an empty string as "".
        convert_options=csv.ConvertOptions(
            column_types=raw_types, null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=False
        ),
    )
    del spool
    for batch in table.to_batches(ROWS_PER_BATCH):
        columns = list(batch.columns)
        columns[finished_at] = columns[finished_at].cast(schema.field(finished_at).type)
        yield pa.RecordBatch.from_arrays(columns, schema=schema)
