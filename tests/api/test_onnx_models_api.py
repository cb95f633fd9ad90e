"""Registered ONNX models on the real stack (PostgreSQL, S3 and SQS over HTTP, the inference
function's poller): a dynamic-size classifier, a YOLOv8-layout detector with planted outputs,
a segmentation model's mask, an embedding model and content similarity.

The similarity tests run on both databases: with DATABASE_URL (the system PostgreSQL 15, no
pgvector: the exact scan) and without (the embedded PostgreSQL 18 with pgvector: HNSW).
"""

from __future__ import annotations

import io
import json
import threading

import numpy as np
import pytest
import requests
from onnx_nets import colour_embedder, dynamic_classifier, planted_head, red_segmenter, register, tinted
from PIL import Image

JSON = {"Content-Type": "application/json"}


def analyze(client, image_id, model, **params):
    return client.http.post(
        "/api/analyze?wait=20",
        body=json.dumps({"image_id": image_id, "model": model, "params": params}),
        headers=JSON,
    )


def png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8), "RGB").save(out, "PNG")
    return out.getvalue()


def flat(colour, size=(60, 40)) -> bytes:
    return png(np.full((size[1], size[0], 3), colour))


@pytest.fixture
def model_cache(tmp_path, monkeypatch):
    from chalicelib.config import reset_settings

    monkeypatch.setenv("PIXELAKE_TMP", str(tmp_path))
    reset_settings()
    yield tmp_path
    monkeypatch.delenv("PIXELAKE_TMP")
    reset_settings()


@pytest.fixture
def inference_threads(monkeypatch):
    """Names of the threads that ran registered models (the pollers are named after their function)."""
    from chalicelib.services import model_runs

    names: list[str] = []
    real_run = model_runs.run
    monkeypatch.setattr(
        model_runs, "run", lambda *a, **k: names.append(threading.current_thread().name) or real_run(*a, **k)
    )
    return names


def test_a_dynamic_classifier_needs_a_size_and_runs_on_the_inference_function(
    client, ready_image, model_cache, inference_threads
):
    meta = {"name": "colours", "framework": "onnx", "task": "classify", "labels": ["red", "blue"]}
    dynamic = register(client, meta, dynamic_classifier(4.0))
    assert dynamic.status_code == 400
    error = dynamic.json_body["error"]
    assert error["code"] == "model_mismatch" and "'pixels'" in error["message"] and "dynamic" in error["message"]
    wrong_labels = register(
        client, {**meta, "labels": ["r", "g", "b"], "input_spec": {"size": [32, 32]}}, dynamic_classifier()
    )
    assert wrong_labels.status_code == 400 and "2 classes, but 3 labels" in wrong_labels.json_body["error"]["message"]
    registered = register(
        client, {**meta, "input_spec": {"size": [32, 24], "resize": "letterbox"}}, dynamic_classifier()
    )
    assert registered.status_code == 201, registered.body
    assert registered.json_body["input_spec"]["size"] == [32, 24]
    for colour, expected in (((240, 0, 0), "red"), ((0, 0, 240), "blue")):
        image = ready_image(flat(colour, (90, 30)), "flat.png")
        task = analyze(client, image["id"], "colours", top_k=2).json_body
        assert task["status"] == "succeeded", task
        assert task["result"]["predictions"][0]["label"] == expected
    assert inference_threads == ["poller-run_inference"] * 2


def test_a_yolov8_detector_takes_its_size_from_the_graph_and_finds_the_planted_objects(
    client, ready_image, model_cache
):
    # A 320×160 image letterboxed into 64×64: scale 0.2, 16 px of grey above and below.
    objects = [  # (cx, cy, w, h) in image pixels, then (person, bicycle) scores
        ((100, 80, 60, 100), (0.92, 0.01)),
        ((104, 80, 60, 100), (0.85, 0.02)),  # the same person: suppressed
        ((250, 100, 80, 40), (0.03, 0.66)),
        ((30, 30, 10, 10), (0.2, 0.1)),  # under the threshold
    ]
    planted = np.array(
        [[cx * 0.2, cy * 0.2 + 16, w * 0.2, h * 0.2, *scores] for (cx, cy, w, h), scores in objects], np.float32
    ).T[None]
    meta = {
        "name": "yolo",
        "framework": "onnx",
        "task": "detect",
        "labels": ["person", "bicycle"],
        "input_spec": {"resize": "letterbox", "head": "yolov8"},
    }
    registered = register(client, meta, planted_head(planted))
    assert registered.status_code == 201, registered.body
    assert registered.json_body["input_spec"]["size"] == [64, 64]
    image = ready_image(flat((90, 160, 30), (320, 160)), "street.png")
    task = analyze(client, image["id"], "yolo", min_confidence=0.5).json_body
    assert task["status"] == "succeeded", task
    found = task["result"]["predictions"]
    assert [(d["label"], d["confidence"]) for d in found] == [
        ("person", pytest.approx(0.92, abs=1e-6)),
        ("bicycle", pytest.approx(0.66, abs=1e-6)),
    ]
    assert found[0]["box"] == {"x": 70, "y": 30, "width": 60, "height": 100}
    assert found[1]["box"] == {"x": 210, "y": 80, "width": 80, "height": 40}
    assert task["result"]["confidence"] == pytest.approx(0.92, abs=1e-6)  # the top detection, lifted out


def test_a_segmentation_model_stores_a_mask_and_the_class_shares(client, ready_image, model_cache):
    meta = {"name": "fruit", "framework": "onnx", "task": "segment", "labels": ["background", "apple"]}
    registered = register(client, meta, red_segmenter(32))
    assert registered.status_code == 201, registered.body
    pixels = np.zeros((40, 80, 3), np.uint8)
    pixels[:, :], pixels[10:30, 10:30] = (0, 0, 220), (220, 0, 0)  # a red square on blue: 400 of 3200 px
    image = ready_image(png(pixels), "apple.png")
    task = analyze(client, image["id"], "fruit").json_body
    assert task["status"] == "succeeded", task
    result = task["result"]
    shares = {c["label"]: c["share"] for c in result["classes"]}
    assert shares["apple"] == pytest.approx(400 / 3200, abs=0.03)
    assert (result["width"], result["height"], result["format"]) == (80, 40, "png")
    mask = np.asarray(Image.open(io.BytesIO(requests.get(result["url"], timeout=10).content)))
    assert mask.shape == (40, 80) and set(np.unique(mask)) == {0, 1}
    assert (mask[13:27, 13:27] == 1).all() and (mask[:, 35:] == 0).all()


def embed_all(client, ready_image, colours) -> list[int]:
    ids = []
    for colour in colours:
        image = ready_image(flat(colour), "swatch.png")
        task = analyze(client, image["id"], "swatches").json_body
        assert task["status"] == "succeeded", task
        assert task["result"]["dimensions"] == 16 and task["result"]["normalized"] is True
        ids.append(image["id"])
    return ids


def test_similar_by_embedding_returns_the_planted_neighbours_on_either_database(client, ready_image, model_cache):
    from sqlalchemy import text

    from chalicelib.db import embeddings
    from chalicelib.db.session import session_scope

    projection = np.random.default_rng(7).standard_normal((16, 3))
    registered = register(
        client, {"name": "swatches", "framework": "onnx", "task": "embed"}, colour_embedder(projection)
    )
    assert registered.status_code == 201, registered.body
    # Three reds close to the query, two blues and a green far from it.
    colours = [(200, 20, 20), (210, 30, 25), (190, 10, 40), (20, 20, 200), (30, 40, 210), (20, 200, 20), (180, 40, 30)]
    ids = embed_all(client, ready_image, colours)
    query = ids[0]
    response = client.http.get(f"/api/images/{query}/similar?model=swatches&limit=3")
    assert response.status_code == 200, response.body
    body = response.json_body
    assert body["model"] == {"name": "swatches", "version": 1}
    # The expected order, from the embeddings computed here with numpy.
    vectors = {}
    for image_id, colour in zip(ids, colours, strict=True):
        v = projection @ (np.array(colour) / 255) + 0.01
        vectors[image_id] = v / np.linalg.norm(v)
    expected = sorted((i for i in ids if i != query), key=lambda i: -float(vectors[i] @ vectors[query]))[:3]
    assert [item["image"]["id"] for item in body["items"]] == expected
    assert set(expected) == {ids[1], ids[2], ids[6]}  # the reds
    for item in body["items"]:
        assert item["similarity"] == pytest.approx(float(vectors[item["image"]["id"]] @ vectors[query]), abs=1e-4)

    with session_scope() as session:
        model_id, owner_id = session.execute(
            text("SELECT model_id, owner_id FROM image_embeddings WHERE image_id = :i"), {"i": query}
        ).one()
        pgvector = embeddings.has_pgvector(session)
        # Where the server has pgvector (the embedded PostgreSQL does) the migration installed it.
        available = session.execute(text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")).first()
        assert pgvector == bool(available)
        print("pgvector:", pgvector)
        index_exists = session.execute(
            text("SELECT 1 FROM pg_class WHERE relname = :n"), {"n": embeddings.index_name(model_id, 16)}
        ).first()
        assert bool(index_exists) == pgvector
        # Another owner's image with the very same vector is never an answer.
        other = session.execute(
            text("INSERT INTO users (email, role) VALUES ('other@example.com', 'user') RETURNING id")
        ).scalar_one()
        other_image = session.execute(
            text("INSERT INTO images (owner_id, bucket, key, status) VALUES (:o, 'b', 'k', 'ready') RETURNING id"),
            {"o": other},
        ).scalar_one()
        session.execute(
            text(
                "INSERT INTO image_embeddings (image_id, model_id, owner_id, dimensions, norm, embedding) "
                "SELECT :img, model_id, :o, dimensions, norm, embedding FROM image_embeddings WHERE image_id = :q"
            ),
            {"img": other_image, "o": other, "q": query},
        )
        vector, norm = embeddings.vector_of(session, query, model_id)
        exact = embeddings.nearest(
            session,
            model_id=model_id,
            owner_id=owner_id,
            vector=vector,
            norm=norm,
            exclude_image_id=query,
            limit=6,
            exact=True,
        )
        if pgvector:  # the HNSW answer is the exact answer
            indexed = embeddings.nearest(
                session,
                model_id=model_id,
                owner_id=owner_id,
                vector=vector,
                norm=norm,
                exclude_image_id=query,
                limit=6,
                exact=False,
            )
            assert [i for i, _ in indexed] == [i for i, _ in exact]
            assert [s for _, s in indexed] == pytest.approx([s for _, s in exact], abs=1e-5)
    assert [i for i, _ in exact][:3] == expected and other_image not in [i for i, _ in exact]
    again = client.http.get(f"/api/images/{query}/similar?model=swatches&limit=10").json_body["items"]
    assert other_image not in [item["image"]["id"] for item in again] and len(again) == 6


def test_similar_by_model_explains_what_is_missing(client, ready_image, model_cache):
    image = ready_image(flat((10, 10, 10)), "dark.png")
    missing = client.http.get(f"/api/images/{image['id']}/similar?model=nothing")
    assert missing.status_code == 404 and missing.json_body["error"]["code"] == "model_not_found"
    register(client, {"name": "swatches", "framework": "onnx", "task": "embed"}, colour_embedder(np.eye(3)))
    register(
        client,
        {"name": "colours", "framework": "onnx", "task": "classify", "input_spec": {"size": [8, 8]}},
        dynamic_classifier(),
    )
    not_embedded = client.http.get(f"/api/images/{image['id']}/similar?model=swatches")
    assert not_embedded.status_code == 409 and not_embedded.json_body["error"]["code"] == "image_not_embedded"
    assert '"model": "swatches"' in not_embedded.json_body["error"]["message"]
    wrong = client.http.get(f"/api/images/{image['id']}/similar?model=colours")
    assert wrong.status_code == 400 and wrong.json_body["error"]["code"] == "wrong_model_task"
    bad_name = client.http.get(f"/api/images/{image['id']}/similar?model=Bad%20Name")
    assert bad_name.status_code == 400
    # The perceptual-hash search is still there without a model.
    assert client.http.get(f"/api/images/{image['id']}/similar").status_code == 200


def test_a_transfer_learned_classifier_runs_backbone_and_head_in_one_task(
    client, ready_image, model_cache, inference_threads
):
    """Embeddings of a registered backbone → a scikit-learn head → both exported as one ONNX
    model, registered and run by the inference function on textures HOG cannot tell apart."""
    from chalicelib.ml.artifacts import cached_artifact
    from chalicelib.ml.features import extract
    from chalicelib.ml.onnx_export import compose_with_backbone, export_sklearn, opset_of
    from chalicelib.ml.training import train_and_evaluate
    from chalicelib.services.model_runs import ModelArtifact, artifact_file

    backbone = colour_embedder(np.random.default_rng(3).standard_normal((16, 3)))
    registered = register(client, {"name": "backbone", "framework": "onnx", "task": "embed"}, backbone)
    assert registered.status_code == 201, registered.body
    row = registered.json_body
    artifact_key = f"models/{1}/backbone/1/model.onnx"
    artifact_file(  # the backbone into this machine's model cache, as a training worker fetches it
        ModelArtifact(row["id"], "backbone", 1, "onnx", "embed", artifact_key, row["sha256"], row["input_spec"], [])
    )
    assert cached_artifact(row["sha256"]) is not None
    params = {"model": "backbone", "sha256": row["sha256"], "input_spec": row["input_spec"], "dimensions": 16}
    rng = np.random.default_rng(5)
    images = [tinted(rng, warm=i % 2 == 0) for i in range(60)]
    labels = ["warm" if i % 2 == 0 else "cool" for i in range(60)]
    X = np.stack([extract(image, "embedding", params) for image in images])
    outcome = train_and_evaluate(X, labels, algorithm="logistic_regression", params={}, seed=0)
    assert outcome.metrics["accuracy"] == 1.0
    joined = compose_with_backbone(
        backbone, export_sklearn(outcome.model, 16, opset=opset_of(backbone)), normalize=True
    )
    meta = {
        "name": "tint",
        "framework": "onnx",
        "task": "classify",
        "labels": outcome.labels,
        "input_spec": {**row["input_spec"], "output": "probabilities"},
        "metrics": outcome.metrics,
    }
    classifier = register(client, meta, joined)
    assert classifier.status_code == 201, classifier.body
    for warm in (True, False):
        held_out = tinted(np.random.default_rng(99 + warm), warm=warm)
        image = ready_image(held_out, "texture.png")
        task = analyze(client, image["id"], "tint", top_k=2).json_body
        assert task["status"] == "succeeded", task
        predictions = task["result"]["predictions"]
        expected = outcome.model.predict_proba(extract(held_out, "embedding", params)[None])[0]
        assert predictions[0]["label"] == ("warm" if warm else "cool")
        by_label = {p["label"]: p["confidence"] for p in predictions}
        assert by_label == pytest.approx(dict(zip(outcome.labels, expected, strict=True)), abs=1e-4)
    assert inference_threads == ["poller-run_inference"] * 2


def onnx_download(client, name: str, version: int = 1):
    return client.http.get(f"/api/models/{name}/versions/{version}/onnx")


def test_a_scikit_learn_model_downloads_as_onnx_that_runs_to_parity(client):
    """GET …/onnx converts the skops model once (skl2onnx), presigns it on moto's S3, and
    onnxruntime on the downloaded bytes gives scikit-learn's labels and probabilities."""
    import onnxruntime
    from sklearn.datasets import load_digits

    from chalicelib import storage
    from chalicelib.db.session import session_scope
    from chalicelib.db.tables import MLModel
    from chalicelib.ml.training import load_model, save_model, train_and_evaluate

    digits = load_digits()
    X, y = digits.data.astype(np.float32), digits.target.astype(str)
    outcome = train_and_evaluate(X[:600], y[:600], algorithm="logistic_regression", params={}, seed=0)
    artifact = save_model(outcome.model)
    spec = {"feature": "pixels", "feature_params": {"size": 8}}
    meta = {"name": "digits-parity", "framework": "sklearn", "task": "classify", "input_spec": spec}
    registered = register(client, meta, artifact)
    assert registered.status_code == 201, registered.body
    with session_scope() as session:
        owner_id = session.get(MLModel, registered.json_body["id"]).owner_id
    # S3 outlives each test's database (ids restart at 1), and training elsewhere in the suite
    # exports models/1/digits/1: a name of its own keeps "not exported yet" true here.
    export_key = storage.model_export_key(owner_id, "digits-parity", 1)
    assert storage.head(export_key) is None

    response = onnx_download(client, "digits-parity")
    assert response.status_code == 200, response.body
    body = response.json_body
    assert body["kind"] == "sklearn_export" and body["framework"] == "sklearn"
    assert (body["name"], body["version"]) == ("digits-parity", 1)
    assert body["input_spec"] == spec
    download = requests.get(body["url"], timeout=10)
    assert download.status_code == 200
    assert 'filename="digits-parity-v1.onnx"' in download.headers["Content-Disposition"]
    assert len(download.content) == body["size_bytes"] == storage.head(export_key)["ContentLength"]

    session = onnxruntime.InferenceSession(download.content, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["features"]
    held_out = X[600:]
    labels, probabilities = session.run(["label", "probabilities"], {"features": held_out})
    model = load_model(artifact)  # the registered model, as the ml worker loads it
    assert list(labels) == list(model.predict(held_out))
    np.testing.assert_allclose(probabilities, model.predict_proba(held_out), atol=1e-5)

    # The second download presigns the stored export (no second conversion: the object is unchanged).
    before = storage.head(export_key)["LastModified"]
    again = onnx_download(client, "digits-parity").json_body
    assert requests.get(again["url"], timeout=10).content == download.content
    assert storage.head(export_key)["LastModified"] == before


def test_onnx_downloads_of_registered_onnx_models_and_of_what_cannot_be_exported(client):
    from chalicelib.ml.training import save_model, train_and_evaluate

    registered = register(
        client,
        {"name": "colours", "framework": "onnx", "task": "classify", "input_spec": {"size": [8, 8]}},
        dynamic_classifier(),
    )
    assert registered.status_code == 201, registered.body
    body = onnx_download(client, "colours").json_body
    assert body["kind"] == "artifact" and body["size_bytes"] == registered.json_body["size_bytes"]
    assert requests.get(body["url"], timeout=10).content == dynamic_classifier()

    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 4)).astype(np.float32)
    svm = train_and_evaluate(X, (X[:, 0] > 0).astype(int), algorithm="linear_svm", params={}, seed=0)
    meta = {"name": "svm", "framework": "sklearn", "task": "classify", "input_spec": {"feature": "pixels"}}
    assert register(client, meta, save_model(svm.model)).status_code == 201
    refused = onnx_download(client, "svm")
    assert refused.status_code == 400 and refused.json_body["error"]["code"] == "export_unsupported"
    assert "LinearSVC" in refused.json_body["error"]["message"]

    for path in ("nothing/versions/1", "colours/versions/2", "colours/versions/99999999999"):
        missing = client.http.get(f"/api/models/{path}/onnx")
        assert missing.status_code == 404 and missing.json_body["error"]["code"] == "model_not_found", path
    assert client.http.get("/api/models/colours/versions/0/onnx").status_code == 400
