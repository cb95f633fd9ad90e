"""Bulk imports of objects already in S3, on a Dask cluster of `dask scheduler` + two `dask worker`
processes (as test_external_cluster.py starts them), with moto's S3 over HTTP and PostgreSQL.

The big import is 300 objects here (the 10,000-object run is benchmarks/bench_imports.py, too slow
for `make test` on two shared cores); its driver's worker is killed with SIGKILL mid-way.
"""

from __future__ import annotations

import gzip
import io
import json
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
from dask_cli import Cluster, documented_worker_env, two_worker_cluster
from PIL import Image
from polling import wait_for
from sample_images import jpeg_bytes

from chalicelib import storage

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.timeout(400)

JSON = {"Content-Type": "application/json"}
IMAGES = 300
PARTITION_KEYS = 20  # 15+ partitions: the kill lands with some counted and some not


def post(client, path, body):
    return client.http.post(path, body=json.dumps(body), headers=JSON)


def tiny_png(i: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8 + i % 5, 6), (i % 256, (7 * i) % 256, 90)).save(out, "PNG")
    return out.getvalue()


def put_all(objects: dict[str, bytes]) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda item: storage.put(item[0], item[1], "application/octet-stream"), objects.items()))


def finished(client, import_id: int, timeout: float = 300) -> dict:
    return wait_for(
        lambda: (
            (body := client.http.get(f"/api/imports/{import_id}").json_body)["status"]
            in ("succeeded", "completed_with_failures", "failed")
            and body
        ),
        timeout=timeout,
        interval=0.25,
        what=f"import {import_id}",
    )


def all_failures(client, import_id: int) -> dict[str, str]:
    failures, cursor = {}, None
    while True:
        query = f"?limit=2&cursor={cursor}" if cursor else "?limit=2"  # small pages: the cursor is exercised
        page = client.http.get(f"/api/imports/{import_id}/failures{query}").json_body
        failures |= {item["key"]: item["reason"] for item in page["items"]}
        if not (cursor := page["next_cursor"]):
            return failures


@pytest.fixture(scope="module")
def import_cluster(stack_env, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("import-dask")
    env = {**documented_worker_env(tmp), "PIXELAKE_IMPORT_PARTITION_KEYS": str(PARTITION_KEYS)}
    with two_worker_cluster(tmp, env) as cluster:
        yield cluster


@pytest.fixture
def user_id(db):
    from chalicelib.db.session import session_scope
    from chalicelib.db.users import ensure_local_user

    with session_scope() as session:
        return ensure_local_user(session).id


def kill_the_driver_worker(cluster: Cluster, import_id: int) -> int:
    """SIGKILL the worker process running the import's driver (its nanny starts a new one); its pid."""
    with distributed.Client(cluster.address, timeout=15) as dask:
        processing = dask.processing()
        (address,) = [worker for worker, keys in processing.items() if f"import-{import_id}" in keys]
        pid = dask.run(lambda: __import__("os").getpid(), workers=[address])[address]
    psutil.Process(pid).kill()
    return pid


def image_rows(prefix: str) -> list[tuple[str, str, int | None]]:
    from chalicelib.db.session import session_scope
    from chalicelib.db.tables import Image as ImageRow

    with session_scope() as session:
        return [
            (row.key, row.status, row.import_id)
            for row in session.query(ImageRow).filter(ImageRow.key.startswith(prefix)).order_by(ImageRow.key)
        ]


def test_an_import_counts_right_after_its_driver_worker_is_killed_and_a_rerun_imports_nothing_twice(
    client, import_cluster, user_id
):
    prefix = f"datasets/{user_id}/archive/"
    objects = {f"{prefix}{i // 100:02d}/img-{i:05d}.png": tiny_png(i) for i in range(IMAGES)}
    objects[f"{prefix}notes.txt"] = b"just some notes, not a picture"
    objects[f"{prefix}truncated.jpg"] = jpeg_bytes()[:5000]
    put_all(objects)

    response = post(client, "/api/imports", {"prefix": prefix})
    assert response.status_code == 202, response.body
    import_id = response.json_body["id"]
    assert response.headers["Location"] == f"/api/imports/{import_id}"

    mid_way = wait_for(
        lambda: (
            (body := client.http.get(f"/api/imports/{import_id}").json_body)["ready"] >= 3 * PARTITION_KEYS and body
        ),
        timeout=240,
        interval=0.1,
        what="a third of the import",
    )
    killed = kill_the_driver_worker(import_cluster, import_id)
    assert mid_way["ready"] + mid_way["failed"] < len(objects)  # the kill came before the end

    done = finished(client, import_id)
    counts = {name: done[name] for name in ("listed", "registered", "ready", "failed", "skipped")}
    assert counts == {"listed": 302, "registered": 302, "ready": 300, "failed": 2, "skipped": 0}, done
    assert done["status"] == "completed_with_failures" and done["listing_done"] and done["error"] is None
    assert done["partitions"] == done["partitions_done"] == -(-302 // PARTITION_KEYS)
    assert done["progress"] == {"percent": 100, "finished": 302}
    assert not psutil.pid_exists(killed) or psutil.Process(killed).status() == psutil.STATUS_ZOMBIE

    failures = all_failures(client, import_id)
    assert set(failures) == {f"{prefix}notes.txt", f"{prefix}truncated.jpg"}
    assert "not a supported image" in failures[f"{prefix}notes.txt"]
    assert "damaged or truncated" in failures[f"{prefix}truncated.jpg"]

    rows = image_rows(prefix)
    assert len(rows) == 302 and {import_ for _, _, import_ in rows} == {import_id}
    assert sum(status == "ready" for _, status, _ in rows) == 300

    # A re-run finds everything there already: nothing is registered or ingested twice.
    again = post(client, "/api/imports", {"prefix": prefix}).json_body
    rerun = finished(client, again["id"])
    assert (rerun["status"], rerun["listed"], rerun["registered"], rerun["ready"], rerun["skipped"]) == (
        "succeeded",
        302,
        0,
        0,
        302,
    )
    assert image_rows(prefix) == rows
    listed = client.http.get("/api/imports?limit=1").json_body
    assert [item["id"] for item in listed["items"]] == [again["id"]] and listed["next_cursor"] == str(again["id"])


def test_manifests_of_keys_and_an_s3_inventory_import_what_they_name(client, import_cluster, user_id):
    from chalicelib.config import get_settings

    bucket = get_settings().bucket
    prefix = f"uploads/{user_id}/from-manifest/"
    put_all({f"{prefix}a.png": tiny_png(1), f"{prefix}b c.png": tiny_png(2), f"{prefix}d.png": tiny_png(3)})

    keys = f"key\n{prefix}a.png\n{prefix}b c.png\n{prefix}missing.png\nuploads/999999/theirs.png\n"
    by_keys = finished(client, post(client, "/api/imports", {"manifest": keys}).json_body["id"])
    assert (by_keys["status"], by_keys["listed"], by_keys["ready"], by_keys["failed"]) == (
        "completed_with_failures",
        4,
        2,
        2,
    )
    failures = all_failures(client, by_keys["id"])
    assert failures[f"{prefix}missing.png"] == "no such object"
    assert failures["uploads/999999/theirs.png"].startswith("outside your storage")
    assert by_keys["source"]["manifest_key"] == storage.import_manifest_key(user_id, by_keys["id"])

    # An S3 Inventory: gzip'd CSV, no header, URL-encoded keys, the columns of its manifest.json.
    etag = {name: storage.head(f"{prefix}{name}")["ETag"].strip('"') for name in ("b c.png", "d.png")}
    size = len(tiny_png(3))
    inventory = (
        f'"{bucket}","{prefix}b+c.png","{len(tiny_png(2))}","2026-12-01T00:00:00.000Z","{etag["b c.png"]}"\n'
        f'"{bucket}","{prefix}d.png","{size}","2026-12-01T00:00:00.000Z","{etag["d.png"]}"\n'
        f'"someone-elses-bucket","{prefix}d.png","{size}","2026-12-01T00:00:00.000Z","{etag["d.png"]}"\n'
    )
    manifest_key = f"datasets/{user_id}/inventory/data/part-0.csv.gz"
    storage.put(manifest_key, gzip.compress(inventory.encode()), "application/gzip")
    request = {
        "manifest_key": manifest_key,
        "format": "inventory",
        "columns": "Bucket, Key, Size, LastModifiedDate, ETag",
    }
    by_inventory = finished(client, post(client, "/api/imports", request).json_body["id"])
    # "b c.png" (its key URL-encoded) came with the first manifest: skipped; d.png is new; the other
    # bucket's row fails with the reason.
    counts = tuple(by_inventory[name] for name in ("listed", "registered", "ready", "skipped", "failed"))
    assert counts == (3, 1, 1, 1, 1), by_inventory
    (reason,) = all_failures(client, by_inventory["id"]).values()
    assert "someone-elses-bucket" in reason


def test_a_prefix_or_manifest_outside_your_storage_is_refused(client, user_id):
    for body in (
        {"prefix": "uploads/999999/"},
        {"prefix": "thumbnails/"},
        {"prefix": f"uploads/{user_id}/../999999/"},
        {"manifest_key": "datasets/999999/keys.csv"},
    ):
        response = post(client, "/api/imports", body)
        assert response.status_code == 403, (body, response.body)
        assert response.json_body["error"]["code"] == "forbidden_prefix"
    for body in (
        {},
        {"prefix": f"uploads/{user_id}/", "manifest": "a.png"},
        {"manifest": "x", "format": "inventory", "columns": "Key, Size"},
        {"manifest_key": f"datasets/{user_id}/no-such-manifest.csv"},
    ):
        response = post(client, "/api/imports", body)
        assert response.status_code == 400, (body, response.body)
    assert client.http.get("/api/imports").json_body == {"items": [], "next_cursor": None}
    assert client.http.get("/api/imports/12345").status_code == 404


def test_an_empty_prefix_or_an_unreadable_manifest_fails_the_import_with_the_reason(client, import_cluster, user_id):
    empty = finished(
        client, post(client, "/api/imports", {"prefix": f"datasets/{user_id}/nothing-here/"}).json_body["id"]
    )
    assert (empty["status"], empty["listed"], empty["error"]) == ("failed", 0, "no objects were found to import")
    broken = post(client, "/api/imports", {"manifest": '"b","only-two-columns"\n', "format": "inventory"}).json_body
    broken = finished(client, broken["id"])
    assert broken["status"] == "failed" and "manifest line 1 has 2 columns" in broken["error"], broken


def same_size_png(i: int) -> bytes:
    """A different picture for each i, every one the same number of bytes (a quota counts bytes)."""
    out = io.BytesIO()
    Image.new("RGB", (8, 6), (i % 256, (7 * i) % 256, 90)).save(out, "PNG")
    return out.getvalue()


def import_tasks(cluster: Cluster, import_id: int) -> list[str]:
    """The scheduler's tasks of the import (its driver and its partitions), in any state."""
    with distributed.Client(cluster.address, timeout=15) as dask:
        keys = dask.run_on_scheduler(lambda dask_scheduler: [str(key) for key in dask_scheduler.tasks])
    return [key for key in keys if key == f"import-{import_id}" or key.startswith(f"import-{import_id}-")]


def counted(import_id: int) -> tuple[int, int]:
    """(images this import registered, failed files it recorded), from their rows."""
    from sqlalchemy import func, select

    from chalicelib.db.session import session_scope
    from chalicelib.db.tables import Image as ImageRow
    from chalicelib.db.tables import ImportFailure

    with session_scope() as session:
        images = session.scalar(select(func.count()).where(ImageRow.import_id == import_id))
        failures = session.scalar(select(func.count()).where(ImportFailure.import_id == import_id))
    return images, failures


def test_a_cancelled_import_submits_no_more_partitions_and_counts_the_ones_that_were_running(
    client, import_cluster, user_id
):
    from chalicelib.services.import_runs import IN_FLIGHT_PER_THREAD

    prefix = f"datasets/{user_id}/to-cancel/"
    objects = {f"{prefix}img-{i:05d}.png": same_size_png(i) for i in range(IMAGES)}
    objects[f"{prefix}img-00007.png"] = b"not a picture"  # a failure in the first partition
    put_all(objects)
    import_id = post(client, "/api/imports", {"prefix": prefix}).json_body["id"]
    wait_for(
        lambda: client.http.get(f"/api/imports/{import_id}").json_body["partitions_done"] >= 1,
        timeout=240,
        interval=0.05,
        what="the import's first partition",
    )

    response = client.http.post(f"/api/imports/{import_id}/cancel")
    assert response.status_code == 200, response.body
    at_cancel = response.json_body
    assert (at_cancel["status"], at_cancel["error"], at_cancel["progress"]["percent"]) == (
        "cancelled",
        "cancelled",
        100,
    )
    assert at_cancel["finished_at"] is not None
    again = client.http.post(f"/api/imports/{import_id}/cancel")
    assert again.status_code == 409 and "already cancelled" in again.json_body["error"]["message"], again.body

    # The driver stops; the partitions in flight finish and are counted, then the cluster forgets the import.
    wait_for(lambda: not import_tasks(import_cluster, import_id), timeout=120, interval=0.25, what="the driver's end")
    done = client.http.get(f"/api/imports/{import_id}").json_body
    assert done["status"] == "cancelled" and done["finished_at"] == at_cancel["finished_at"], done
    # At most the partitions in flight (two per worker thread; the cluster has two) came in after
    # the cancel: none was submitted after it, so the import stopped short of its 15.
    in_flight = IN_FLIGHT_PER_THREAD * 2
    assert at_cancel["partitions_done"] <= done["partitions_done"] <= at_cancel["partitions_done"] + in_flight, done
    assert done["partitions_done"] < -(-IMAGES // PARTITION_KEYS) and not done["listing_done"]
    # What the driver submitted (it records it as it stops) is what was counted, and no more was listed.
    assert done["partitions"] == done["partitions_done"] and done["listed"] == PARTITION_KEYS * done["partitions"]
    # Honest counts: each counted partition's files once, and as many image and failure rows.
    assert done["ready"] + done["failed"] + done["skipped"] == PARTITION_KEYS * done["partitions_done"], done
    assert (done["registered"], done["failed"], done["skipped"]) == (done["ready"] + 1, 1, 0), done
    assert counted(import_id) == (done["registered"], done["failed"])
    assert set(all_failures(client, import_id)) == {f"{prefix}img-00007.png"}


def test_an_import_stops_at_the_storage_quota_and_the_files_over_it_fail_with_the_reason(
    client, import_cluster, user_id
):
    from sqlalchemy import update

    from chalicelib.db import users
    from chalicelib.db.session import session_scope
    from chalicelib.db.tables import User

    prefix = f"datasets/{user_id}/over-quota/"
    objects = {f"{prefix}img-{i:03d}.png": same_size_png(i) for i in range(50)}  # 3 partitions, run at once
    put_all(objects)
    size = len(same_size_png(0))
    fits = 30

    def set_quota(quota: int | None) -> None:
        with session_scope() as session:
            session.execute(update(User).where(User.id == user_id).values(quota_bytes=quota))

    with session_scope() as session:
        used = users.storage_used(session, user_id)
    quota = used + fits * size + size // 2  # room for 30 files and half of another
    set_quota(quota)

    first = finished(client, post(client, "/api/imports", {"prefix": prefix}).json_body["id"])
    counts = tuple(first[name] for name in ("listed", "registered", "ready", "failed", "skipped"))
    assert (first["status"], counts) == ("completed_with_failures", (50, fits, fits, 50 - fits, 0)), first
    failures = all_failures(client, first["id"])
    assert len(failures) == 50 - fits
    assert all(reason.startswith(f"over your storage quota of {quota:,} bytes") for reason in failures.values())
    with session_scope() as session:
        stored = users.storage_used(session, user_id)
    assert quota - size < stored <= quota
    assert len(image_rows(prefix)) == fits  # a file over the quota has no image

    # A re-run charges nothing twice: the 30 are there (skipped), the 20 are still over the quota.
    rerun = finished(client, post(client, "/api/imports", {"prefix": prefix}).json_body["id"])
    assert (rerun["registered"], rerun["ready"], rerun["failed"], rerun["skipped"]) == (0, 0, 50 - fits, fits), rerun
    with session_scope() as session:
        assert users.storage_used(session, user_id) == stored

    set_quota(0)  # unlimited: the rest come in
    lifted = finished(client, post(client, "/api/imports", {"prefix": prefix}).json_body["id"])
    assert (lifted["status"], lifted["registered"], lifted["ready"], lifted["skipped"]) == (
        "succeeded",
        50 - fits,
        50 - fits,
        fits,
    ), lifted
    assert len(image_rows(prefix)) == 50


def test_an_inventorys_size_column_does_not_decide_the_bytes_an_image_takes(client, import_cluster, user_id):
    from chalicelib.config import get_settings

    key = f"datasets/{user_id}/forged/a.png"
    put_all({key: same_size_png(5)})
    etag = storage.head(key)["ETag"].strip('"')
    inventory = f'"{get_settings().bucket}","{key}","1","2026-12-01T00:00:00.000Z","{etag}"\n'  # Size: 1 byte
    done = finished(
        client, post(client, "/api/imports", {"manifest": inventory, "format": "inventory"}).json_body["id"]
    )
    assert (done["status"], done["ready"]) == ("succeeded", 1), done
    (image,) = client.http.get("/api/images").json_body["items"]
    assert image["size_bytes"] == len(same_size_png(5)) > 1


def test_a_running_import_whose_driver_the_scheduler_lost_is_submitted_again_when_read(client, import_cluster, user_id):
    """What a scheduler restart leaves: the import `running` and no driver on the scheduler. Reading
    it (GET /api/imports/{id}, no resume) submits it again, and it imports what it names."""
    from chalicelib.db import imports as import_rows
    from chalicelib.db import transitions
    from chalicelib.db.session import session_scope

    prefix = f"datasets/{user_id}/stranded/"
    put_all({f"{prefix}img-{i}.png": tiny_png(i) for i in range(5)})
    with session_scope() as session:
        import_id = import_rows.create(session, owner_id=user_id, source={"prefix": prefix}).id
        transitions.import_running(transitions.on_session(session), import_id)
    done = finished(client, import_id, timeout=120)
    assert (done["status"], done["ready"], done["failed"], done["skipped"]) == ("succeeded", 5, 0, 0), done
