"""Transfer learning as a training job on the real Dask cluster: the `embedding` feature runs a
registered ONNX embed model (the backbone) on onnxruntime in the workers, the head is fitted on its
vectors, and the job registers one ONNX model running backbone + head, which the inference
function then runs on new uploads.

The task (tests/onnx_nets.py: tinted): warm and cool textures of the same luminance. HOG sees
only grayscale gradients and cannot tell them apart; the backbone embeds the mean colour.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from onnx_nets import colour_embedder, register, tinted
from polling import wait_for

from chalicelib import storage

pytestmark = pytest.mark.timeout(600)

JSON = {"Content-Type": "application/json"}


def post(client, path, body):
    return client.http.post(path, body=json.dumps(body), headers=JSON)


def finished(client, job_id):
    def check():
        job = client.http.get(f"/api/training-jobs/{job_id}").json_body
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    return wait_for(check, timeout=300, interval=0.3, what=f"training job {job_id}")


@pytest.fixture
def tints_dataset(client, db):
    """80 warm and cool textures as a dataset (one folder per label)."""
    from chalicelib.db.session import session_scope
    from chalicelib.db.users import ensure_local_user

    with session_scope() as session:
        user_id = ensure_local_user(session).id
    rng = np.random.default_rng(21)
    prefix = f"datasets/{user_id}/tints/"
    for i in range(80):
        label = "warm" if i % 2 == 0 else "cool"
        storage.put(f"{prefix}{label}/{i:03d}.png", tinted(rng, warm=label == "warm"), "image/png")
    dataset = post(client, "/api/datasets", {"name": "tints", "prefix": prefix})
    assert dataset.status_code == 201, dataset.body
    return dataset.json_body


def test_an_embedding_training_job_registers_backbone_and_head_as_one_model(
    client, dask_cluster, workers, ready_image, tints_dataset
):
    backbone = register(
        client,
        {"name": "colours", "framework": "onnx", "task": "embed"},
        colour_embedder(np.random.default_rng(3).standard_normal((16, 3))),
    )
    assert backbone.status_code == 201, backbone.body

    jobs = {}
    for features, feature_params in (("embedding", {"model": "colours"}), ("hog", {"size": 48})):
        response = post(
            client,
            "/api/training-jobs",
            {
                "dataset_id": tints_dataset["id"],
                "model_name": f"tint-{features}",
                "algorithm": "logistic_regression",
                "features": features,
                "feature_params": feature_params,
                "seed": 1,
            },
        )
        assert response.status_code == 202, response.body
        jobs[features] = response.json_body
    assert jobs["embedding"]["feature_params"]["sha256"] == backbone.json_body["sha256"]
    done = {features: finished(client, job["id"]) for features, job in jobs.items()}
    for job in done.values():
        assert job["status"] == "succeeded", job["error"]
    by_embedding, by_hog = done["embedding"]["metrics"], done["hog"]["metrics"]
    print(
        f"held-out accuracy on {by_embedding['test_items']} textures: embedding {by_embedding['accuracy']:.3f}, "
        f"hog {by_hog['accuracy']:.3f}"
    )
    assert by_embedding["accuracy"] >= 0.95 and by_hog["accuracy"] <= 0.75
    assert by_embedding["failed_items"] == 0 and by_embedding["shards"]["count"] >= 1
    assert by_embedding["confusion_matrix"]["labels"] == ["cool", "warm"]

    model = client.http.get("/api/models/tint-embedding").json_body["versions"][0]
    assert (model["framework"], model["task"], model["labels"]) == ("onnx", "classify", ["cool", "warm"])
    assert model["metrics"]["backbone"] == {"name": "colours", "version": 1, "sha256": backbone.json_body["sha256"]}
    assert model["input_spec"]["output"] == "probabilities" and model["input_spec"]["size"] == [16, 16]

    # The registered model runs backbone + head in one task on new uploads.
    for warm in (True, False):
        image = ready_image(tinted(np.random.default_rng(70 + warm), warm=warm), "texture.png")
        task = post(
            client, "/api/analyze?wait=20", {"image_id": image["id"], "model": "tint-embedding", "params": {}}
        ).json_body
        assert task["status"] == "succeeded", task
        assert task["result"]["predictions"][0]["label"] == ("warm" if warm else "cool")


@pytest.mark.parametrize(
    "body, code",
    [
        ({"algorithm": "logistic_regression", "feature_params": {"model": "nobody"}}, "invalid_backbone"),
        ({"algorithm": "linear_svm", "feature_params": {"model": "colours"}}, "export_unsupported"),
        (
            {"algorithm": "knn", "feature_params": {"model": "colours", "sha256": "0" * 64}},
            "invalid_parameter",
        ),
    ],
)
def test_an_embedding_job_needs_one_of_your_embed_models(client, dask_cluster, tints_dataset, body, code):
    registered = register(
        client,
        {"name": "colours", "framework": "onnx", "task": "embed"},
        colour_embedder(np.random.default_rng(3).standard_normal((16, 3))),
    )
    assert registered.status_code == 201, registered.body
    response = post(
        client,
        "/api/training-jobs",
        {"dataset_id": tints_dataset["id"], "model_name": "m", "features": "embedding", **body},
    )
    assert response.status_code == 400, response.body
    assert response.json_body["error"]["code"] == code
