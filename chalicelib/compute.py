"""The Dask client: DASK_SCHEDULER_ADDRESS (the Fargate cluster in AWS, a cluster you run with
`dask scheduler` and `dask worker`, the local stack's LocalCluster), else a LocalCluster started
in this process on first use.

Jobs are submitted fire-and-forget: the API answers at once and the job, running on a worker,
writes its progress and results to PostgreSQL and S3 itself. Because nobody waits on the future,
every submit first checks that the cluster can run the job (`check_cluster`): a cluster that
cannot raises ComputeUnavailable with the reason, which the caller records as the job's failure,
instead of a job that stays `pending` while the scheduler logs an error nobody reads.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chalicelib.config import get_settings
from chalicelib.errors import ComputeUnavailable

LOCAL_WORKERS = 2
# A cluster that passed its check is trusted this long: workers that join later ran the same
# preload (chalicelib.dask_preload), which refuses to start a misconfigured one.
CHECK_TTL_S = 60
PRELOAD = "chalicelib.dask_preload"
HOW_TO_START = (
    f"start the scheduler and every worker with `PYTHONPATH=<pixelake checkout> dask scheduler|worker … "
    f"--preload {PRELOAD}` (README: Running on your own Dask cluster)"
)


# Pixelake's Dask settings (chalicelib/dask_config/*.yaml): external workers read them through
# DASK_CONFIG=DASK_CONFIG_DIR, the LocalCluster here through use_worker_config().
DASK_CONFIG_DIR = Path(__file__).resolve().parent / "dask_config"


def use_worker_config() -> None:
    """Merge DASK_CONFIG_DIR's settings into this process's Dask configuration, as a worker started
    with DASK_CONFIG pointing there reads them (nannies read theirs when they are created)."""
    import dask.config

    dask.config.update(dask.config.config, dask.config.collect([str(DASK_CONFIG_DIR)], env={}), priority="new")


def start_local_cluster(n_workers: int = LOCAL_WORKERS):
    """A LocalCluster on loopback only (the default dashboard would listen on every interface)."""
    from distributed import LocalCluster

    use_worker_config()
    return LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        silence_logs=40,
        preload=[PRELOAD],
    )


def dask_client():
    """The cached client; a new one once it closed itself (it gives up reconnecting to a scheduler
    that stayed away longer than its timeout, as a restarted one may)."""
    client = _client()
    if client.status == "closed":
        reset_client()
        client = _client()
    return client


@functools.cache
def _client():
    from distributed import Client

    address = get_settings().dask_scheduler_address
    if address:
        try:
            return Client(address, timeout=15, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ComputeUnavailable(f"no Dask scheduler answers at {address}: {exc}") from exc
    try:
        cluster = start_local_cluster()
    except Exception as exc:  # e.g. every worker's preload refused to start (dask_preload says why)
        raise ComputeUnavailable(f"the local Dask cluster did not start: {exc}") from exc
    return Client(cluster, set_as_default=False)


_checked_at: dict[int, float] = {}
_check_lock = threading.Lock()


def check_cluster(client) -> None:
    """Raise ComputeUnavailable unless the scheduler and every worker can run Pixelake's jobs.

    Checks, in order: the Dask, distributed, Python, cloudpickle… versions of the client, the
    scheduler and the workers (`version_mismatches`); that the scheduler can
    import chalicelib (it unpickles each job); that each worker runs the same chalicelib code
    against the same stage, bucket and S3 endpoint as this process.
    """
    from chalicelib import dask_preload

    mismatches = version_mismatches(client.get_versions())
    if mismatches:
        raise ComputeUnavailable(
            "the Dask client, scheduler and workers run different versions: " + "; ".join(mismatches)
        )
    here = dask_preload.describe()
    try:
        scheduler = {"code": client.run_on_scheduler(dask_preload.scheduler_code)}
    except Exception as exc:  # whatever the scheduler raised while unpickling or running the probe
        raise ComputeUnavailable(
            f"the Dask scheduler cannot load Pixelake's code ({type(exc).__name__}: {exc}); {HOW_TO_START}"
        ) from exc
    problems = _differences("the Dask scheduler", scheduler, here, keys=("code",))
    for address, answer in client.run(dask_preload.describe, on_error="return").items():
        if isinstance(answer, BaseException):
            problems.append(f"Dask worker {address} cannot load Pixelake's code ({type(answer).__name__}: {answer})")
        else:
            problems += _differences(f"Dask worker {address}", answer, here)
    if problems:
        raise ComputeUnavailable("; ".join(problems) + f"; {HOW_TO_START}")


def version_mismatches(versions: dict) -> list[str]:
    """Packages whose versions differ between this client and the scheduler or a worker.

    `Client.get_versions(check=True)` only warns (distributed 2024+), so the comparison is made here,
    over the packages Dask requires to agree, and Python's major.minor (patch releases pickle alike).
    """
    from distributed.versions import required_packages, scheduler_relevant_packages

    def wanted(info: dict, names) -> dict[str, str | None]:
        packages = info.get("packages", {})
        found = {name: packages.get(name) for name in names if name != "python"}
        if "python" in names:
            found["python"] = ".".join(str(packages.get("python", "")).split(".")[:2])
        return found

    names = [*required_packages, "python"]
    here = wanted(versions["client"], names)
    others = {"the scheduler": wanted(versions["scheduler"], [n for n in names if n in scheduler_relevant_packages])}
    others |= {f"worker {address}": wanted(info, names) for address, info in versions["workers"].items()}
    return [
        f"{name} {version} on {who}, {here[name]} here"
        for who, found in others.items()
        for name, version in found.items()
        if version != here[name]
    ]


def _differences(who: str, there: dict, here: dict, keys=("code", "stage", "bucket", "aws_endpoint_url")) -> list[str]:
    names = {"code": "chalicelib code", "stage": "stage", "bucket": "bucket", "aws_endpoint_url": "S3 endpoint"}
    return [
        f"{who} uses {names[k]} {there.get(k) or 'AWS'!r}, this process {here[k] or 'AWS'!r}"
        for k in keys
        if there.get(k) != here[k]
    ]


def ready_client():
    """The client, checked at most once per CHECK_TTL_S (ComputeUnavailable when the cluster cannot run jobs)."""
    client = dask_client()
    with _check_lock:
        if time.monotonic() - _checked_at.get(id(client), -CHECK_TTL_S) >= CHECK_TTL_S:
            check_cluster(client)
            _checked_at[id(client)] = time.monotonic()
    return client


def submit_job(fn: Callable, *args: Any, key: str) -> None:
    """Run fn(*args) on the cluster without waiting and without keeping a reference.

    Raises ComputeUnavailable, with nothing submitted, when the cluster cannot run it.
    """
    from distributed import fire_and_forget

    fire_and_forget(ready_client().submit(fn, *args, key=key, pure=False))


def worker_count() -> int:
    return len(dask_client().scheduler_info(n_workers=-1).get("workers", {}))


# A job still `pending` this long after it was created was lost before a worker started it (the
# submitting Lambda froze before its message left, or the scheduler restarted): submit it again.
# Dask deduplicates by key, so a submission that did arrive and is merely queued is not doubled.
RESUBMIT_AFTER_S = 60


def pending_for_s(status: str, created_at: datetime) -> float:
    """Seconds a job has waited for a worker (0 once it left `pending`)."""
    return (datetime.now(UTC) - created_at).total_seconds() if status == "pending" else 0.0


def start_timed_out(status: str, created_at: datetime) -> bool:
    """True when no worker took the job within PIXELAKE_DASK_START_TIMEOUT_S: it is to be reported failed."""
    return pending_for_s(status, created_at) >= get_settings().dask_start_timeout_s


def resubmit_if_stalled(fn: Callable, row_id: int, *, key: str, status: str, created_at: datetime) -> bool:
    """Submit a job again when its first submission was lost (ComputeUnavailable when the cluster cannot run it)."""
    if pending_for_s(status, created_at) < RESUBMIT_AFTER_S:
        return False
    submit_job(fn, row_id, key=key)
    return True


# A `running` job's driver is looked for on the scheduler at most this often per job (on reads).
# Dask itself reruns a driver lost with its worker; one lost with its scheduler (restarted, its
# tasks forgotten) nobody runs again: the read submits it again (resubmit_if_driver_lost).
DRIVER_CHECK_S = 10
# How long a read waits for the scheduler's answer (a restarting one: the client is reconnecting).
DRIVER_CHECK_TIMEOUT_S = 3
_driver_checked_at: dict[str, float] = {}


def scheduler_holds(key: str) -> bool:
    """Whether the scheduler knows the task `key`: it does from submission until the task ends
    (queued, running, or rescheduled after its worker died), then a fire-and-forget task is
    forgotten. One call to the scheduler's get_task_status handler (no code is pickled); raises
    ComputeUnavailable, OSError or TimeoutError when the scheduler does not answer."""
    client = dask_client()
    states = client.sync(client.scheduler.get_task_status, keys=[key], callback_timeout=DRIVER_CHECK_TIMEOUT_S)
    return states.get(key) is not None


def resubmit_if_driver_lost(fn: Callable, row_id: int, *, key: str, still_running: Callable[[], bool]) -> bool:
    """Submit a `running` job again when the scheduler no longer holds its driver's key, at most
    once per DRIVER_CHECK_S per key. The new driver runs only what is unfinished (each job's driver
    is resumable).

    Race: the driver may finish between the caller's read of `running` and the key check. A driver
    writes its final status before it returns, and its key is forgotten only after it returned, so
    once the key is gone `still_running()` (a read made after the check) sees the final status and
    nothing is submitted. Were a finished job submitted anyway (a resume at the same moment), its
    driver would do nothing: batch_running / import_running / job_running skip a finished job.
    ComputeUnavailable (the cluster cannot take the job) or OSError / TimeoutError (the scheduler
    does not answer) propagate."""
    now = time.monotonic()
    with _check_lock:
        if now - _driver_checked_at.get(key, -DRIVER_CHECK_S) < DRIVER_CHECK_S:
            return False
        if len(_driver_checked_at) >= 1024:  # a long-lived process reads many jobs: forget the stale ones
            for stale in [k for k, at in _driver_checked_at.items() if now - at >= DRIVER_CHECK_S]:
                del _driver_checked_at[stale]
        _driver_checked_at[key] = now
    if scheduler_holds(key) or not still_running():
        return False
    submit_job(fn, row_id, key=key)
    return True


def reset_client() -> None:
    if _client.cache_info().currsize:
        _client().close()
    _client.cache_clear()
    _checked_at.clear()
    _driver_checked_at.clear()
