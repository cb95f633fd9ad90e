"""Two users walk every endpoint in ROUTES: another user's resource is a 404, an admin sees it.

The walk iterates ROUTES, so an endpoint added later is checked without editing this file:
its path parameters are filled with user A's resources by name (`image_id` → an image, …),
and its JSON body is built from its declared schema, with every `*_id` field pointing at A's
resource of that kind. A path parameter of an unknown kind fails the test, naming it.
"""

import re
import uuid

import msgspec
import pytest
from accounts import ADMIN_EMAIL, new_user, post_json

from chalicelib import storage
from chalicelib.api.routing import ROUTES, RouteDoc
from chalicelib.db.session import session_scope
from chalicelib.db.tables import (
    ApiKey,
    Batch,
    Dataset,
    DatasetItem,
    Image,
    Import,
    MLModel,
    ProcessingTask,
    Result,
    TrainingJob,
)

# Bodies that need more than their schema says (a registered operation, a built-in analyzer).
EXAMPLE_BODIES = {
    ("POST", "/api/process"): lambda ids: {"image_id": ids["image"], "operation": "grayscale"},
    ("POST", "/api/analyze"): lambda ids: {"image_id": ids["image"], "model": "properties"},
    ("POST", "/api/training-jobs"): lambda ids: {
        "dataset_id": ids["dataset"],
        "model_name": "ownership-check",
        "algorithm": "logistic_regression",
        "features": "color_histogram",
    },
    ("POST", "/api/batches"): lambda ids: {"image_ids": [ids["image"]], "operation": "grayscale"},
}
# Path parameter or body field name (without _id / _ids) → the kind of resource it names.
KINDS = {
    "image": "image",
    "task": "task",
    "key": "key",
    "api_key": "key",
    "model": "model",
    "dataset": "dataset",
    "item": "item",
    "job": "job",
    "training_job": "job",
    "batch": "batch",
    "import": "import",
    "result": "result",
}
# Path parameters that are not ids, by the path segment before them: models are named and versioned.
NAMED = {("models", "name"): "model_name", ("versions", "version"): "model_version"}
# Routes whose owner and admin calls are not made: they start work elsewhere (a Dask export,
# a training run); the other user's 404 is still checked.
ONLY_OTHER_USER = {("GET", "/api/batches/{batch_id}/export"), ("POST", "/api/training-jobs"), ("POST", "/api/batches")}


def make_resources(owner_id: int, marker: str) -> dict[str, int]:
    """One of each owned resource for owner_id, written straight to the database; names carry `marker`."""
    with session_scope() as session:
        image = Image(
            owner_id=owner_id,
            bucket="pixelake-local",
            key=f"uploads/{owner_id}/{uuid.uuid4().hex}.jpg",
            filename=f"{marker}.jpg",
            content_type="image/jpeg",
            size_bytes=100,
            status="ready",
            format="jpeg",
            width=10,
            height=10,
            mode="RGB",
            thumbnails=[],
            metadata_={"note": marker},
        )
        session.add(image)
        session.flush()
        task = ProcessingTask(
            owner_id=owner_id, image_id=image.id, kind="analysis", operation="properties", params={}, status="succeeded"
        )
        session.add(task)
        session.flush()
        result = Result(task_id=task.id, image_id=image.id, kind="analysis", data={"note": marker})
        key = ApiKey(user_id=owner_id, name=marker[:100], prefix="pxl_owned", key_hash=uuid.uuid4().hex * 2)
        model = MLModel(
            owner_id=owner_id,
            name=marker[:100],
            version=1,
            framework="onnx",
            task="classify",
            artifact_key=f"models/{owner_id}/{marker}.onnx",
            sha256="0" * 64,
            status="active",
        )
        dataset = Dataset(owner_id=owner_id, name=marker[:100], description=marker)
        session.add_all([result, key, model, dataset])
        session.flush()
        item = DatasetItem(dataset_id=dataset.id, image_id=image.id, key=image.key, label="cat")
        job = TrainingJob(
            owner_id=owner_id,
            dataset_id=dataset.id,
            model_name=marker[:100],
            algorithm="logistic_regression",
            features="color_histogram",
            status="succeeded",
            model_id=model.id,
        )
        batch = Batch(
            owner_id=owner_id,
            request_hash=uuid.uuid4().hex,
            operation="grayscale",
            status="succeeded",
            source={"note": marker},
        )
        imported = Import(
            owner_id=owner_id, source={"prefix": storage.user_upload_prefix(owner_id)}, status="succeeded"
        )
        session.add_all([item, job, batch, imported])
        session.flush()
        return {
            "image": image.id,
            "task": task.id,
            "result": result.id,
            "key": key.id,
            "model": model.id,
            "dataset": dataset.id,
            "item": item.id,
            "job": job.id,
            "batch": batch.id,
            "import": imported.id,
            "model_name": model.name,
            "model_version": model.version,
        }


def kind_of(name: str) -> str | None:
    stem = re.sub(r"_ids?$", "", name)
    return KINDS.get(stem) if stem != name else None


def concrete_path(doc: RouteDoc, ids: dict[str, int]) -> str:
    segments = doc.path.split("/")

    def fill(match: re.Match) -> str:
        before = segments[segments.index(match.group(0)) - 1]
        kind = NAMED.get((before, match.group(1))) or kind_of(match.group(1))
        if kind is None:
            pytest.fail(
                f"{doc.method} {doc.path}: path parameter {{{match.group(1)}}} names no known resource kind; "
                "add it to KINDS (and make_resources) in tests/api/test_ownership.py"
            )
        return str(ids[kind])

    return re.sub(r"{(\w+)}", fill, doc.path)


def example_value(name: str, schema: dict, ids: dict[str, int], components: dict):
    if "$ref" in schema:
        return example_body(components[schema["$ref"].rsplit("/", 1)[-1]], ids, components)
    for variant in schema.get("anyOf", []):
        if variant.get("type") != "null":
            return example_value(name, variant, ids, components)
    kind = kind_of(name)
    if kind is not None:
        return [ids[kind]] if schema.get("type") == "array" else ids[kind]
    if "enum" in schema:
        return schema["enum"][0]
    return {
        "integer": schema.get("minimum", 1),
        "number": schema.get("minimum", 1),
        "boolean": False,
        "object": {},
        "array": [],
        "string": "x" * max(1, schema.get("minLength", 1)),
    }.get(schema.get("type"), "x")


def example_body(schema: dict, ids: dict[str, int], components: dict) -> dict:
    """The required fields of a declared body, each with a plausible value; *_id fields name A's resources."""
    return {
        name: example_value(name, prop, ids, components)
        for name, prop in schema.get("properties", {}).items()
        if name in schema.get("required", [])
    }


def names_a_resource(doc: RouteDoc) -> bool:
    if doc.path_params:
        return True
    if doc.body is None:
        return False
    return any(kind_of(f.name) for f in msgspec.structs.fields(doc.body))


def call(client, doc: RouteDoc, ids: dict[str, int], headers: dict):
    path = concrete_path(doc, ids)
    if doc.body is None:
        return getattr(client.http, doc.method.lower())(path, headers=headers)
    if (doc.method, doc.path) in EXAMPLE_BODIES:
        body = EXAMPLE_BODIES[(doc.method, doc.path)](ids)
    else:
        (schema,), components = msgspec.json.schema_components([doc.body], ref_template="#/$defs/{name}")
        body = example_body(components[schema["$ref"].rsplit("/", 1)[-1]], ids, components)
    return (
        post_json(client, path, body, headers)
        if doc.method == "POST"
        else getattr(client.http, doc.method.lower())(
            path, body=msgspec.json.encode(body), headers={"Content-Type": "application/json", **headers}
        )
    )


@pytest.fixture
def three_users(auth_required):
    client = auth_required
    return (
        client,
        new_user(client, "alice@example.com"),
        new_user(client, "bob@example.com"),
        new_user(client, ADMIN_EMAIL),
    )


def test_another_users_resources_answer_404_on_every_endpoint_and_admins_see_them(three_users):
    client, alice, bob, admin = three_users
    checked = []
    try:
        for doc in ROUTES:
            if not doc.auth or not names_a_resource(doc):
                continue
            ids = make_resources(alice["id"], f"owned-by-alice-{uuid.uuid4().hex[:8]}")
            as_bob = call(client, doc, ids, bob["headers"])
            assert as_bob.status_code == 404, (doc.method, doc.path, as_bob.status_code, as_bob.body[:300])
            assert as_bob.json_body["error"]["code"] in ("not_found", "model_not_found"), (doc.method, doc.path)
            # Another user's resource reads exactly like one that does not exist: no existence leak.
            ghost_ids = {kind: f"no-such-{v}" if isinstance(v, str) else 10**15 + v for kind, v in ids.items()}
            ghost = call(client, doc, ghost_ids, bob["headers"])
            assert ghost.status_code == 404
            ghost_body = ghost.body.decode()
            for kind in sorted(ghost_ids, key=lambda k: -len(str(ghost_ids[k]))):
                ghost_body = ghost_body.replace(str(ghost_ids[kind]), str(ids[kind]))
            assert ghost_body == as_bob.body.decode(), (doc.method, doc.path)
            checked.append((doc.method, doc.path))
            if (doc.method, doc.path) in ONLY_OTHER_USER:
                continue
            # The owner and an admin find it (they may still be refused for another reason, e.g. a 409).
            if doc.method != "DELETE":  # deleting as admin would leave nothing for the owner's own call
                as_admin = call(client, doc, ids, admin["headers"])
                assert as_admin.status_code != 404 and as_admin.status_code < 500, (
                    doc.method,
                    doc.path,
                    "admin",
                    as_admin.status_code,
                    as_admin.body[:300],
                )
            as_alice = call(client, doc, ids, alice["headers"])
            assert as_alice.status_code != 404 and as_alice.status_code < 500, (
                doc.method,
                doc.path,
                "owner",
                as_alice.status_code,
                as_alice.body[:300],
            )
    finally:
        _purge_task_queues()
    assert {
        ("GET", "/api/images/{image_id}"),
        ("GET", "/api/tasks/{task_id}"),
        ("POST", "/api/process"),
        ("DELETE", "/api/keys/{key_id}"),
    } <= set(checked), checked


def test_lists_and_aggregates_show_nothing_of_another_user(three_users):
    client, alice, bob, admin = three_users
    marker = f"owned-by-alice-{uuid.uuid4().hex[:8]}"
    make_resources(alice["id"], marker)
    listed = 0
    for doc in ROUTES:
        if doc.method != "GET" or not doc.auth or doc.path_params:
            continue
        as_bob = client.http.get(doc.path, headers=bob["headers"])
        assert as_bob.status_code in (200, 403), (doc.path, as_bob.status_code, as_bob.body[:300])
        assert marker.encode() not in as_bob.body, doc.path
        listed += 1
    assert listed >= 4
    assert marker.encode() in client.http.get("/api/images", headers=admin["headers"]).body
    assert marker.encode() in client.http.get("/api/images", headers=alice["headers"]).body
    stats = client.http.get("/api/stats", headers=bob["headers"]).json_body
    assert sum(stats["images"].values()) == 0 and stats["tasks"] == []
    assert client.http.get("/api/stats", headers=alice["headers"]).json_body["images"]["ready"] == 1


def test_uploads_belong_to_their_uploader(three_users):
    from sample_images import jpeg_bytes, multipart

    client, alice, bob, _admin = three_users
    body, headers = multipart("file", "alice.jpg", jpeg_bytes((32, 24)))
    image = client.http.post("/api/upload", body=body, headers={**headers, **alice["headers"]}).json_body
    presigned = post_json(
        client, "/api/uploads", {"filename": "a.jpg", "content_type": "image/jpeg", "size": 10}, alice["headers"]
    ).json_body
    for image_id in (image["id"], presigned["image_id"]):
        assert client.http.get(f"/api/images/{image_id}", headers=bob["headers"]).status_code == 404
        assert client.http.get(f"/api/images/{image_id}", headers=alice["headers"]).status_code == 200
    with session_scope() as session:
        owners = {session.get(Image, i).owner_id for i in (image["id"], presigned["image_id"])}
        keys = [session.get(Image, i).key for i in (image["id"], presigned["image_id"])]
    assert owners == {alice["id"]}
    assert all(k.startswith(f"uploads/{alice['id']}/") for k in keys)


def _purge_task_queues() -> None:
    """Tasks the walk queued must not run in a later test (ids restart with each test's database)."""
    from chalicelib import queues
    from chalicelib.config import get_settings

    settings = get_settings()
    for name in (settings.tasks_queue, settings.ml_tasks_queue, settings.inference_queue):
        queues.sqs_client().purge_queue(QueueUrl=queues.queue_url(name))
