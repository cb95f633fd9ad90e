"""The Dask client: DASK_SCHEDULER_ADDRESS (the Fargate cluster in AWS, the local stack's
LocalCluster on a laptop), else a LocalCluster started in this process on first use.

Jobs are submitted fire-and-forget: the API answers at once and the job, running on a
worker, writes its progress and results to PostgreSQL and S3 itself.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC
from typing import Any

from chalicelib.config import get_settings

LOCAL_WORKERS = 2


def start_local_cluster(n_workers: int = LOCAL_WORKERS):
    """A LocalCluster on loopback only (the default dashboard would listen on every interface)."""
    from distributed import LocalCluster

    return LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        silence_logs=40,
    )


@functools.cache
def dask_client():
    from distributed import Client

    address = get_settings().dask_scheduler_address
    if address:
        return Client(address, timeout=15, set_as_default=False)
    return Client(start_local_cluster(), set_as_default=False)


def submit_job(fn: Callable, *args: Any, key: str) -> None:
    """Run fn(*args) on the cluster without waiting and without keeping a reference."""
    from distributed import fire_and_forget

    fire_and_forget(dask_client().submit(fn, *args, key=key, pure=False))


# A job still `pending` this long after it was created was lost before a worker started it (the
# submitting Lambda froze before its message left, or the scheduler restarted): submit it again.
# Dask deduplicates by key, so a submission that did arrive and is merely queued is not doubled.
RESUBMIT_AFTER_S = 60


def resubmit_if_stalled(fn: Callable, row_id: int, *, key: str, status: str, created_at) -> bool:
    from datetime import datetime

    if status != "pending" or (datetime.now(UTC) - created_at).total_seconds() < RESUBMIT_AFTER_S:
        return False
    submit_job(fn, row_id, key=key)
    return True


def reset_client() -> None:
    if dask_client.cache_info().currsize:
        dask_client().close()
    dask_client.cache_clear()
