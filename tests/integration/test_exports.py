"""Exports read the way Spark and Athena read them: a Hive-partitioned Parquet tree on S3, opened with
pyarrow.dataset over S3 (moto's server), partitions from the paths, and the Glue table's columns."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest
from cfnlint.decode import cfn_yaml
from polling import wait_for
from pyarrow import fs
from sample_images import jpeg_bytes

from chalicelib import storage

pytestmark = pytest.mark.timeout(300)
ROOT = Path(__file__).resolve().parents[2]
JSON = {"Content-Type": "application/json"}
# Glue (Hive) types of the pyarrow types the exports use.
HIVE_TYPES = {
    pa.int64(): "bigint",
    pa.int32(): "int",
    pa.string(): "string",
    pa.float64(): "double",
    pa.timestamp("us", tz="UTC"): "timestamp",
}


def s3_dataset(stack_env) -> ds.Dataset:
    """The whole exports/results/ tree as one dataset, as a query engine sees it."""
    from chalicelib.config import get_settings

    filesystem = fs.S3FileSystem(
        access_key=stack_env["AWS_ACCESS_KEY_ID"],
        secret_key=stack_env["AWS_SECRET_ACCESS_KEY"],
        endpoint_override=stack_env["AWS_ENDPOINT_URL"],
        region="us-east-1",
    )
    return ds.dataset(
        f"{get_settings().bucket}/{storage.RESULTS_EXPORT_PREFIX}",
        filesystem=filesystem,
        format="parquet",
        partitioning="hive",
    )


def run_on_cluster(fn, *args):
    from chalicelib import compute

    return compute.ready_client().submit(fn, *args, pure=False).result(timeout=120)


def test_a_batch_export_is_one_partition_of_the_results_table(
    client, dask_cluster, ready_image, stack_env, monkeypatch
):
    from chalicelib.db.session import session_scope
    from chalicelib.db.tables import Image
    from chalicelib.services.exports import export_account

    good = [ready_image(jpeg_bytes((70 + i, 50)))["id"] for i in range(6)]
    bad = ready_image(jpeg_bytes()[:1800])["id"]
    response = client.http.post(
        "/api/batches",
        body=json.dumps({"image_ids": [*good, bad], "operation": "thumbnail", "params": {"size": 16}}),
        headers=JSON,
    )
    batch_id = response.json_body["id"]
    wait_for(
        lambda: client.http.get(f"/api/batches/{batch_id}").json_body["status"] == "succeeded",
        timeout=180,
        what="the batch",
    )
    export = client.http.get(f"/api/batches/{batch_id}/export")
    assert export.status_code == 200, export.body
    with session_scope() as session:
        owner_id = session.get_one(Image, good[0]).owner_id
    assert export.json_body["key"] == (
        f"exports/results/owner_id={owner_id}/export=batch-{batch_id}/analysis=thumbnail/part-0.parquet"
    )

    table = s3_dataset(stack_env).to_table(
        filter=(pc.field("owner_id") == owner_id) & (pc.field("export") == f"batch-{batch_id}")
    )
    assert table.num_rows == 7
    assert table.schema.field("confidence").type == pa.float64()
    assert table.schema.field("finished_at").type == pa.timestamp("us", tz="UTC")
    assert set(table.column("analysis").to_pylist()) == {"thumbnail"}
    rows = {row["image_id"]: row for row in table.to_pylist()}
    assert rows[bad]["status"] == "failed" and rows[bad]["error"] and rows[bad]["data"] is None
    for image_id in good:
        row = rows[image_id]
        assert row["status"] == "succeeded" and row["batch_id"] == batch_id
        assert row["output_key"] and storage.head(row["output_key"]) is not None
        assert json.loads(row["params"]) == {"size": 16}
        assert isinstance(json.loads(row["data"]), dict)

    # Exporting again replaces the files: the same rows, not twice as many.
    assert client.http.get(f"/api/batches/{batch_id}/export").status_code == 200
    again = s3_dataset(stack_env).to_table(filter=pc.field("export") == f"batch-{batch_id}")
    assert again.num_rows == 7

    # The account's export holds the uploads' analyses too: every task of the user, by analysis.
    prefix = run_on_cluster(export_account, owner_id)
    export_name = prefix.rstrip("/").split("export=")[1]
    account = s3_dataset(stack_env).to_table(filter=pc.field("export") == export_name)
    from sqlalchemy import func, select

    from chalicelib.db.tables import ProcessingTask, Result

    with session_scope() as session:
        expected = session.scalar(
            select(func.count())
            .select_from(ProcessingTask)
            .outerjoin(Result, Result.task_id == ProcessingTask.id)
            .where(ProcessingTask.owner_id == owner_id)
        )
        analyses = set(session.scalars(select(ProcessingTask.operation).where(ProcessingTask.owner_id == owner_id)))
    assert account.num_rows == expected and set(account.column("analysis").to_pylist()) == analyses
    assert {"thumbnail", "properties"} <= analyses
    # Taken a few tasks per COPY (in this process), the export has the very same rows.
    from datetime import UTC, datetime

    from chalicelib.services import exports

    monkeypatch.setattr(exports, "TASKS_PER_COPY", 4)
    chunked_prefix = exports.export_account(owner_id, at=datetime(2030, 1, 1, tzinfo=UTC))
    chunked = s3_dataset(stack_env).to_table(
        filter=pc.field("export") == chunked_prefix.rstrip("/").split("export=")[1]
    )
    columns = [name for name in account.column_names if name != "export"]
    assert chunked.select(columns).sort_by("task_id").equals(account.select(columns).sort_by("task_id"))
    # Grouping by a partition key, as an Athena query would.
    per_analysis = account.group_by("analysis").aggregate([("image_id", "count")])
    assert dict(zip(per_analysis["analysis"].to_pylist(), per_analysis["image_id_count"].to_pylist()))["thumbnail"] == 7


def test_the_glue_table_has_the_exports_columns_and_partitions():
    from chalicelib.services.exports import PARTITION_KEYS, dataset_schema, result_schema

    template = cfn_yaml.load(str(ROOT / "infra" / "aws" / "storage.yaml"))
    table = template["Resources"]["ResultsTable"]["Properties"]["TableInput"]
    columns = [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]]
    assert columns == [(f.name, HIVE_TYPES[f.type]) for f in result_schema()]
    partitions = [(c["Name"], c["Type"]) for c in table["PartitionKeys"]]
    schema = dataset_schema()
    assert partitions == [(name, HIVE_TYPES[schema.field(name).type]) for name in PARTITION_KEYS]
    assert table["StorageDescriptor"]["Location"] == {"Fn::Sub": f"s3://${{Bucket}}/{storage.RESULTS_EXPORT_PREFIX}"}
