"""A batch survives a restart of its whole Dask cluster: `dask scheduler` and both `dask worker`s
SIGKILLed mid-batch, a new cluster started with Dask's own CLI, and the batch read through the API
until it ends. Nobody calls POST /api/batches/{id}/resume: reading the batch finds that the new
scheduler does not hold its driver's key and submits it again (chalicelib/compute.py
`resubmit_if_driver_lost`); the new driver runs only the tasks not yet finished."""

from __future__ import annotations

import os

import pytest
from batch_rows import STATUSES, counted, finished, post, register_images, results_per_task
from dask_cli import Cluster, documented_worker_env, restore_cluster, start_two_workers, use_cluster
from polling import wait_for

from chalicelib import compute
from chalicelib.services.dask_submit import batch_key

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.timeout(180)

IMAGES, STORED = 60, 54  # the last 6 images have no object in S3: their tasks fail


@pytest.fixture
def clusters(stack_env, tmp_path, monkeypatch):
    """The cluster the batch starts on, and the directory of the one started after it was killed."""
    # Partitions of 5 tasks: both workers busy, and a restart lands with partitions done and not.
    env = {**documented_worker_env(tmp_path), "PIXELAKE_BATCH_PARTITION_SIZE": "5"}
    first, second = Cluster(tmp_path / "first"), Cluster(tmp_path / "second")
    for cluster in (first, second):
        cluster.tmp.mkdir()
    monkeypatch.setattr(compute, "DRIVER_CHECK_S", 0)  # every read looks for the driver (not once per 10 s)
    previous = os.environ.get("DASK_SCHEDULER_ADDRESS")
    use_cluster(start_two_workers(first, env))
    try:
        yield first, second, env
    finally:
        restore_cluster(previous)  # not the second cluster's address: it stops here
        first.stop()
        second.stop()


def test_a_batch_finishes_after_its_scheduler_and_workers_restart_without_a_resume(client, clusters, caplog):
    first, second, env = clusters
    prefix = register_images(IMAGES, stored=STORED, size=(320, 240))
    created = post(client, "/api/batches", {"prefix": prefix, "operation": "blur", "params": {"sigma": 4}}).json_body
    batch_id = created["id"]

    def mid_way():
        batch = client.http.get(f"/api/batches/{batch_id}").json_body
        return batch["status"] == "running" and 5 <= batch["succeeded"] < 25 and batch

    before = wait_for(mid_way, timeout=60, interval=0.05, what="the batch under way")
    first.kill()

    # The old scheduler does not answer: the read still answers (a warning is logged), the batch running.
    stranded = client.http.get(f"/api/batches/{batch_id}")
    assert stranded.status_code == 200 and stranded.json_body["status"] == "running", stranded.body
    assert stranded.json_body["succeeded"] < STORED
    assert f"batch {batch_id}: could not look for its driver on Dask or submit it again" in caplog.text

    use_cluster(start_two_workers(second, env))
    with distributed.Client(second.address, timeout=15) as dask:
        assert dask.run_on_scheduler(lambda dask_scheduler: batch_key(batch_id) in dask_scheduler.tasks) is False
        batch = finished(client, batch_id, timeout=90)
    assert batch["status"] == "succeeded", batch
    failed = IMAGES - STORED
    assert (batch["total"], batch["succeeded"], batch["failed"], batch["cancelled"]) == (IMAGES, STORED, failed, 0)
    assert {status: batch[status] for status in STATUSES} == counted(batch_id)
    assert counted(batch_id)["pending"] == counted(batch_id)["running"] == 0
    assert results_per_task(batch_id) == [1] * STORED + [0] * failed  # no task's results doubled
    assert before["succeeded"] < STORED  # the new cluster ran what was left
    assert f"batch {batch_id} was running with no driver on the scheduler" in caplog.text
