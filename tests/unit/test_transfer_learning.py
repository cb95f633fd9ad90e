"""Transfer learning and ONNX export: a classifier on a backbone's embeddings against one on HOG,
skl2onnx exports checked against scikit-learn (onnxruntime as the reference runtime), and the
backbone + head joined into one ONNX model.

The task: two classes of textures with the same luminance, one tinted warm and one cool. HOG
sees only grayscale gradients, so it cannot tell them apart; the backbone (an embedding of the
mean colour) separates them. Both held-out accuracies are printed (pytest -s) and bounded.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
import onnxruntime
import pytest
from onnx_nets import colour_embedder, tinted
from PIL import Image

from chalicelib.ml.artifacts import store_artifact
from chalicelib.ml.features import extract
from chalicelib.ml.onnx_export import compose_with_backbone, export_sklearn, opset_of
from chalicelib.ml.training import train_and_evaluate

PROJECTION = np.random.default_rng(3).standard_normal((16, 3))


@pytest.fixture
def backbone(tmp_path, monkeypatch):
    """The embedding model in this test's model cache, and the feature parameters naming it."""
    from chalicelib.config import reset_settings

    monkeypatch.setenv("PIXELAKE_TMP", str(tmp_path))
    reset_settings()
    data = colour_embedder(PROJECTION)
    sha256 = hashlib.sha256(data).hexdigest()
    store_artifact(data, sha256)
    params = {"model": "colours", "sha256": sha256, "input_spec": {"size": [16, 16]}, "dimensions": 16}
    yield data, params
    monkeypatch.delenv("PIXELAKE_TMP")
    reset_settings()


@pytest.fixture(scope="module")
def dataset():
    rng = np.random.default_rng(11)
    images = [tinted(rng, warm=i % 2 == 0) for i in range(120)]
    labels = ["warm" if i % 2 == 0 else "cool" for i in range(120)]
    return images, labels


def test_embeddings_separate_what_hog_cannot(backbone, dataset):
    _, params = backbone
    images, labels = dataset
    X_embedding = np.stack([extract(data, "embedding", params) for data in images])
    X_hog = np.stack([extract(data, "hog", {"size": 48}) for data in images])
    assert X_embedding.shape == (120, 16) and np.linalg.norm(X_embedding, axis=1) == pytest.approx(1.0, abs=1e-5)
    by_embedding = train_and_evaluate(X_embedding, labels, algorithm="logistic_regression", params={}, seed=0)
    by_hog = train_and_evaluate(X_hog, labels, algorithm="logistic_regression", params={}, seed=0)
    print(
        f"held-out accuracy on {by_hog.metrics['test_items']} images: "
        f"embedding {by_embedding.metrics['accuracy']:.3f}, hog {by_hog.metrics['accuracy']:.3f}"
    )
    assert by_embedding.metrics["accuracy"] >= 0.95
    assert by_hog.metrics["accuracy"] <= 0.75
    assert by_embedding.metrics["confusion_matrix"]["labels"] == ["cool", "warm"]


@pytest.mark.parametrize("algorithm", ["logistic_regression", "random_forest", "mlp", "knn"])
def test_an_exported_classifier_matches_scikit_learn_on_onnxruntime(algorithm):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    params = {"hidden_units": 32, "max_iter": 300} if algorithm == "mlp" else {}
    outcome = train_and_evaluate(X[:1400].astype(np.float32), y[:1400], algorithm=algorithm, params=params, seed=0)
    session = onnxruntime.InferenceSession(export_sklearn(outcome.model, 64), providers=["CPUExecutionProvider"])
    X_check = X[1400:].astype(np.float32)  # never seen in training (k-NN weights a seen point by 1/0)
    label, scores = session.run(["label", "probabilities"], {"features": X_check})
    reference = outcome.model.predict_proba(X_check)
    distance = float(np.abs(scores - reference).max())
    agreement = float(np.mean([str(v) for v in label] == outcome.model.predict(X_check)))
    print(f"{algorithm}: max |onnxruntime − scikit-learn| probability = {distance:.2e}, labels agree {agreement:.3f}")
    if algorithm == "knn":
        # float32 distances in the export: neighbours at nearly equal distances can swap, which moves
        # a distance-weighted vote a little; the predicted labels still agree.
        assert distance < 0.2 and agreement >= 0.98
    else:
        assert distance < 1e-4 and agreement == 1.0


def test_what_skl2onnx_cannot_convert_is_a_named_refusal():
    from sklearn.datasets import load_digits

    from chalicelib.errors import InvalidRequest

    X, y = load_digits(return_X_y=True)
    outcome = train_and_evaluate(X.astype(np.float32), y, algorithm="linear_svm", params={}, seed=0)
    with pytest.raises(InvalidRequest) as refused:  # no probabilities: its confidences are Pixelake's softmax
        export_sklearn(outcome.model, 64)
    assert refused.value.code == "export_unsupported" and "LinearSVC" in str(refused.value)


def test_backbone_and_head_run_as_one_onnx_model(backbone, dataset):
    data, params = backbone
    images, labels = dataset
    X = np.stack([extract(image, "embedding", params) for image in images])
    outcome = train_and_evaluate(X, labels, algorithm="logistic_regression", params={}, seed=0)
    head = export_sklearn(outcome.model, 16, opset=opset_of(data))
    joined = compose_with_backbone(data, head, normalize=True)
    session = onnxruntime.InferenceSession(joined, providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["head/probabilities"]
    # The same image through the joined model and through feature extraction + scikit-learn.
    for image in images[:10]:
        pixels = np.asarray(Image.open(io.BytesIO(image)).convert("RGB").resize((16, 16), Image.Resampling.BILINEAR))
        tensor = (pixels.astype(np.float32) / 255).transpose(2, 0, 1)[None]
        joined_probabilities = session.run(None, {session.get_inputs()[0].name: tensor})[0][0]
        expected = outcome.model.predict_proba(extract(image, "embedding", params)[None])[0]
        assert joined_probabilities == pytest.approx(expected, abs=1e-4)
