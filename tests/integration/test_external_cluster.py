"""Pixelake on a Dask cluster run the way a user runs one: `dask scheduler` and two `dask worker`
processes started with Dask's own command-line tools, configured only by what the README documents
(the preload, PYTHONPATH, and the worker environment file the local stack writes)."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import psutil
import pytest
from dask_cli import ROOT, Cluster, documented_worker_env, two_worker_cluster, use_cluster
from PIL import Image
from polling import wait_for
from sample_images import jpeg_bytes

from chalicelib import storage

distributed = pytest.importorskip("distributed")
dask_config = pytest.importorskip("dask.config")

pytestmark = pytest.mark.timeout(300)

JSON = {"Content-Type": "application/json"}


def post(client, path, body):
    return client.http.post(path, body=json.dumps(body), headers=JSON)


@pytest.fixture(scope="module")
def external_cluster(stack_env, tmp_path_factory):
    """`dask scheduler` + two `dask worker`s, each in its own process, configured as the README says."""
    tmp = tmp_path_factory.mktemp("external-dask")
    env = documented_worker_env(tmp)
    assert env["PYTHONPATH"] == str(ROOT) and env["AWS_ENDPOINT_URL"] == stack_env["AWS_ENDPOINT_URL"]
    with two_worker_cluster(tmp, env) as cluster:
        yield cluster


def digit_png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray((pixels * 255 / 16).round().astype(np.uint8), "L").save(out, "PNG")
    return out.getvalue()


def finished(client, path: str, timeout: float = 240) -> dict:
    return wait_for(
        lambda: (body := client.http.get(path).json_body)["status"] in ("succeeded", "failed", "cancelled") and body,
        timeout=timeout,
        interval=0.25,
        what=path,
    )


def test_a_batch_and_a_training_job_run_on_dask_cli_workers(client, external_cluster, ready_image):
    from sklearn.datasets import load_digits

    good = [ready_image(jpeg_bytes((90 + i, 60)))["id"] for i in range(12)]
    bad = [ready_image(jpeg_bytes()[:2000])["id"] for _ in range(2)]
    response = post(client, "/api/batches", {"image_ids": good + bad, "operation": "thumbnail", "params": {"size": 24}})
    assert response.status_code == 202, response.body
    batch = finished(client, f"/api/batches/{response.json_body['id']}")
    assert (batch["status"], batch["total"], batch["succeeded"], batch["failed"]) == ("succeeded", 14, 12, 2)

    from chalicelib.db.session import session_scope
    from chalicelib.db.users import ensure_local_user

    with session_scope() as session:
        user_id = ensure_local_user(session).id
    digits = load_digits()
    prefix = f"datasets/{user_id}/digits-external/"
    for i in range(0, 1797, 3):  # a third of the digits, every class
        storage.put(f"{prefix}{digits.target[i]}/{i:04d}.png", digit_png(digits.images[i]), "image/png")
    dataset = post(client, "/api/datasets", {"name": "digits-external", "prefix": prefix}).json_body
    job = post(
        client,
        "/api/training-jobs",
        {
            "dataset_id": dataset["id"],
            "model_name": "digits-ext",
            "algorithm": "logistic_regression",
            "features": "pixels",
        },
    )
    assert job.status_code == 202, job.body
    done = finished(client, f"/api/training-jobs/{job.json_body['id']}")
    assert done["status"] == "succeeded", done["error"]
    assert done["metrics"]["accuracy"] >= 0.9 and done["metrics"]["items"] == len(range(0, 1797, 3))

    # Both workers ran tasks, each started through the preload, and their dashboards listen on loopback only.
    with distributed.Client(external_cluster.address, timeout=15) as dask:
        workers = dask.scheduler_info(n_workers=-1)["workers"]
        processed = dask.run(lambda dask_worker: dask_worker.state.transition_counter)
    assert len(workers) == 2 and all(count > 0 for count in processed.values())
    for worker in external_cluster.processes[1:3]:
        for child in [psutil.Process(worker.pid), *psutil.Process(worker.pid).children(recursive=True)]:
            for connection in child.net_connections(kind="inet"):
                if connection.status == psutil.CONN_LISTEN:
                    assert connection.laddr.ip == "127.0.0.1", (child.pid, connection)
    for name in ("worker-a", "worker-b"):
        assert "Pixelake Dask worker ready" in external_cluster.log(name)
    # DASK_CONFIG from the env file: Pixelake's Dask settings reach the workers' processes.
    with distributed.Client(external_cluster.address, timeout=15) as dask:
        trim = dask.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
        profiling = dask.run(lambda: dask_config.get("distributed.worker.profile.enabled"))
    assert list(trim.values()) == [None, None], trim
    assert list(profiling.values()) == [False, False], profiling


def test_a_batch_whose_every_task_failed_is_failed(client, external_cluster, ready_image):
    bad = [ready_image(jpeg_bytes()[:1500])["id"] for _ in range(3)]
    response = post(client, "/api/batches", {"image_ids": bad, "operation": "flip", "params": {}})
    assert response.status_code == 202, response.body
    batch = finished(client, f"/api/batches/{response.json_body['id']}")
    assert (batch["status"], batch["failed"], batch["succeeded"]) == ("failed", 3, 0)
    assert batch["error"] == "all 3 tasks failed (see each task's error)"


def test_a_worker_without_an_s3_endpoint_refuses_to_start(external_cluster, tmp_path):
    env = documented_worker_env(tmp_path)
    del env["AWS_ENDPOINT_URL"]
    worker = external_cluster.start_worker("worker-no-endpoint", env)
    assert worker.wait(timeout=90) != 0
    log = external_cluster.log("worker-no-endpoint")
    assert "refuses to start" in log and "AWS_ENDPOINT_URL" in log


@pytest.fixture
def other_cluster(stack_env, external_cluster, tmp_path):
    """A second cluster for a test; the module's cluster is put back afterwards."""
    cluster = Cluster(tmp_path)
    yield cluster
    cluster.stop()
    use_cluster(external_cluster.address)


def test_a_scheduler_without_pixelakes_code_fails_the_job_at_once(client, other_cluster, ready_image):
    image = ready_image(jpeg_bytes((64, 48)))
    env = {"PATH": os.environ["PATH"], "HOME": str(other_cluster.tmp)}  # no PYTHONPATH: chalicelib is not importable
    use_cluster(other_cluster.start_scheduler(env, preload=False))
    response = post(client, "/api/batches", {"image_ids": [image["id"]], "operation": "flip", "params": {}})
    assert response.status_code == 202, response.body
    batch = response.json_body
    assert batch["status"] == "failed" and "cannot load Pixelake's code" in batch["error"]
    assert "No module named 'chalicelib'" in batch["error"] and batch["failed"] == 1
    assert client.http.get(f"/api/batches/{batch['id']}").json_body["status"] == "failed"


def test_workers_running_other_code_fail_the_job_with_the_difference(client, other_cluster, ready_image, tmp_path):
    image = ready_image(jpeg_bytes((64, 48)))
    env = documented_worker_env(tmp_path)
    other_cluster.start_scheduler(env)
    # A worker deployed from another version of the code (one changed line).
    other_code = tmp_path / "other-checkout"
    shutil.copytree(ROOT / "chalicelib", other_code / "chalicelib", ignore=shutil.ignore_patterns("__pycache__"))
    with open(other_code / "chalicelib" / "config.py", "a") as f:
        f.write("\n# a later version\n")
    other_cluster.start_worker("stale-worker", {**env, "PYTHONPATH": str(other_code)})
    other_cluster.wait_for_workers(1)
    use_cluster(other_cluster.address)
    response = post(client, "/api/batches", {"image_ids": [image["id"]], "operation": "flip", "params": {}})
    batch = response.json_body
    assert batch["status"] == "failed", batch
    assert "Dask worker" in batch["error"] and "uses chalicelib code" in batch["error"]


def test_a_job_no_worker_starts_fails_after_the_start_timeout(
    client, other_cluster, ready_image, tmp_path, monkeypatch
):
    from chalicelib.config import reset_settings

    image = ready_image(jpeg_bytes((64, 48)))
    use_cluster(other_cluster.start_scheduler(documented_worker_env(tmp_path)))  # and no worker at all
    monkeypatch.setenv("PIXELAKE_DASK_START_TIMEOUT_S", "2")
    reset_settings()
    response = post(client, "/api/batches", {"image_ids": [image["id"]], "operation": "flip", "params": {}})
    assert response.status_code == 202 and response.json_body["status"] == "pending"
    batch = finished(client, f"/api/batches/{response.json_body['id']}", timeout=60)
    assert batch["status"] == "failed" and batch["failed"] == 1
    assert "no Dask worker started the batch within 2 s (the cluster has 0 workers" in batch["error"]
    monkeypatch.delenv("PIXELAKE_DASK_START_TIMEOUT_S")
    reset_settings()


def test_a_worker_with_other_package_versions_fails_the_job_with_the_versions(
    client, other_cluster, ready_image, tmp_path
):
    import toolz

    image = ready_image(jpeg_bytes((64, 48)))
    env = documented_worker_env(tmp_path)
    other_cluster.start_scheduler(env)
    # A worker whose environment holds another release of toolz (one of the packages Dask requires to agree).
    site = tmp_path / "older-site"
    installed = Path(toolz.__file__).parent
    shutil.copytree(installed, site / "toolz", ignore=shutil.ignore_patterns("__pycache__"))
    (dist_info,) = installed.parent.glob(f"toolz-{toolz.__version__}.dist-info")
    older = site / "toolz-0.12.1.dist-info"
    shutil.copytree(dist_info, older)
    metadata = (older / "METADATA").read_text()
    (older / "METADATA").write_text(metadata.replace(f"Version: {toolz.__version__}", "Version: 0.12.1", 1))
    other_cluster.start_worker("older-worker", {**env, "PYTHONPATH": f"{site}:{env['PYTHONPATH']}"})
    other_cluster.wait_for_workers(1)
    use_cluster(other_cluster.address)
    response = post(client, "/api/batches", {"image_ids": [image["id"]], "operation": "flip", "params": {}})
    batch = response.json_body
    assert batch["status"] == "failed", batch
    assert "different versions" in batch["error"] and "toolz 0.12.1 on worker" in batch["error"]
    assert f"{toolz.__version__} here" in batch["error"]
