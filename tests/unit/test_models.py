"""Model runtimes on models the tests build: ONNX graphs with fixed weights, skops-saved sklearn models."""

from __future__ import annotations

import io
import math
import operator

import numpy as np
import onnx
import onnxruntime
import pytest
import skops.io
from onnx import TensorProto, helper, numpy_helper
from onnx_nets import detector_net
from PIL import Image
from sklearn.datasets import load_digits, load_iris, load_sample_image
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.svm import LinearSVC

from chalicelib.config import reset_settings
from chalicelib.errors import InvalidRequest
from chalicelib.imaging.analyzers import AnalysisInput
from chalicelib.ml.artifacts import (
    ArtifactMismatch,
    artifact_path,
    cached_artifact,
    load_artifact,
    sha256_of,
    store_artifact,
)
from chalicelib.ml.features import extract
from chalicelib.ml.model_spec import InputSpec, validate_input_spec
from chalicelib.ml.runtimes import OnnxModel, SklearnModel

RED_BGR, BLUE_BGR = (0, 0, 255), (255, 0, 0)
# Logits = W · (mean R, mean G, mean B) + b: "red" scores twice the red mean, "blue" the blue mean.
WEIGHTS = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 2.0]], np.float32)
BIAS = np.zeros(2, np.float32)
SPEC = {"size": [16, 16], "channel_order": "RGB", "layout": "NCHW", "scale": 1 / 255}


def colour_net(layout: str = "NCHW", softmax_output: bool = False) -> bytes:
    """GlobalAveragePool → Flatten → Gemm (→ Softmax): a colour classifier with known logits."""
    shape = [1, 3, 16, 16] if layout == "NCHW" else [1, 16, 16, 3]
    nodes = [] if layout == "NCHW" else [helper.make_node("Transpose", ["input"], ["nchw"], perm=[0, 3, 1, 2])]
    first = "input" if layout == "NCHW" else "nchw"
    nodes += [
        helper.make_node("GlobalAveragePool", [first], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("Gemm", ["flat", "W", "b"], ["logits"], transB=1),
    ]
    output = "logits"
    if softmax_output:
        nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1))
        output = "probabilities"
    graph = helper.make_graph(
        nodes,
        "colour",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, [1, 2])],
        [numpy_helper.from_array(WEIGHTS, "W"), numpy_helper.from_array(BIAS, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def flat(colour_bgr, height: int = 40, width: int = 60) -> np.ndarray:
    return np.full((height, width, 3), colour_bgr, np.uint8)


def softmax_of(*logits: float) -> list[float]:
    exp = [math.exp(v) for v in logits]
    return [v / sum(exp) for v in exp]


# --- ONNX ----------------------------------------------------------------------------------------


def test_onnx_classifier_gives_softmax_confidences():
    model = OnnxModel(colour_net(), SPEC, ["red", "blue"])
    red = model.predict(flat(RED_BGR))
    assert [p["label"] for p in red] == ["red", "blue"]
    assert [p["confidence"] for p in red] == pytest.approx(softmax_of(2.0, 0.0), abs=1e-5)  # 0.8808, 0.1192
    blue = model.predict(flat(BLUE_BGR), top_k=1)
    assert blue == [{"label": "blue", "confidence": pytest.approx(0.880797, abs=1e-5)}]


def test_one_onnx_model_shared_by_threads_answers_each_its_own_image():
    # Workers keep one loaded model per container; a Dask worker's or the local stack's threads share it.
    from concurrent.futures import ThreadPoolExecutor

    model = OnnxModel(colour_net(), SPEC, ["red", "blue"])
    images = {"red": flat(RED_BGR, 240, 320), "blue": flat(BLUE_BGR, 240, 320)}
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda name: (name, model.predict(images[name])[0]["label"]), ["red", "blue"] * 200))
    assert all(name == label for name, label in answers)


def test_onnx_matches_onnxruntime_on_the_same_tensor():
    data = colour_net()
    model = OnnxModel(data, SPEC, ["red", "blue"])
    image = np.random.default_rng(0).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    blob = model.blob(image)
    reference = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"input": blob})[0][0]
    confidences = {p["label"]: p["confidence"] for p in model.predict(image)}
    assert [confidences["red"], confidences["blue"]] == pytest.approx(softmax_of(*reference), abs=1e-5)


def test_onnx_input_spec_channel_order_mean_std_and_layout():
    bgr_spec = {**SPEC, "channel_order": "BGR"}  # the network now sees red as its third channel
    assert OnnxModel(colour_net(), bgr_spec, ["red", "blue"]).predict(flat(RED_BGR))[0]["label"] == "blue"
    normalised = {**SPEC, "mean": [0.5, 0.5, 0.5], "std": [0.5]}  # red → (1, -1, -1): logits (2, -2)
    red = OnnxModel(colour_net(), normalised, ["red", "blue"]).predict(flat(RED_BGR))
    assert red[0]["confidence"] == pytest.approx(softmax_of(2.0, -2.0)[0], abs=1e-5)
    nhwc = OnnxModel(colour_net("NHWC"), {**SPEC, "layout": "NHWC"}, ["red", "blue"])
    assert nhwc.blob(flat(RED_BGR)).shape == (1, 16, 16, 3)
    assert nhwc.predict(flat(BLUE_BGR))[0]["confidence"] == pytest.approx(0.880797, abs=1e-5)


def test_onnx_probabilities_are_not_softmaxed_twice():
    model = OnnxModel(colour_net(softmax_output=True), SPEC, ["red", "blue"])
    assert model.predict(flat(RED_BGR))[0]["confidence"] == pytest.approx(softmax_of(2.0, 0.0)[0], abs=1e-5)
    forced = OnnxModel(colour_net(softmax_output=True), {**SPEC, "output": "logits"}, ["red", "blue"])
    twice = softmax_of(*softmax_of(2.0, 0.0))[0]
    assert forced.predict(flat(RED_BGR))[0]["confidence"] == pytest.approx(twice, abs=1e-5)


def test_onnx_crop_resize_keeps_the_centre():
    image = flat(BLUE_BGR, 40, 120)
    image[:, 40:80] = RED_BGR  # red centre square between blue sides
    cropped = OnnxModel(colour_net(), {**SPEC, "resize": "crop"}, ["red", "blue"]).predict(image)
    stretched = OnnxModel(colour_net(), SPEC, ["red", "blue"]).predict(image)
    assert cropped[0] == {"label": "red", "confidence": pytest.approx(0.880797, abs=1e-3)}
    assert stretched[0]["label"] == "blue"


def test_onnx_label_count_must_match_outputs_and_garbage_is_refused():
    with pytest.raises(InvalidRequest, match="2 outputs but 3 labels"):
        OnnxModel(colour_net(), SPEC, ["red", "blue", "green"]).predict(flat(RED_BGR))
    with pytest.raises(InvalidRequest) as bad:
        OnnxModel(b"not an onnx file", SPEC)
    assert bad.value.code == "invalid_model"
    assert [p["label"] for p in OnnxModel(colour_net(), SPEC).predict(flat(RED_BGR))] == ["class_0", "class_1"]


def test_onnx_detect_returns_boxes_in_pixels():
    rows = np.array(
        [
            [0, 1, 0.60, 0.10, 0.20, 0.50, 0.70],  # cat at 60%
            [0, 0, 0.95, 0.50, 0.00, 1.20, 0.50],  # dog at 95%, right edge clipped to the image
            [0, 1, 0.10, 0.00, 0.00, 1.00, 1.00],  # below min_confidence
        ]
    )
    model = OnnxModel(detector_net(rows), SPEC, ["dog", "cat"])
    found = model.detect(flat(RED_BGR, 100, 200), min_confidence=0.5)
    assert found == [
        {"label": "dog", "confidence": pytest.approx(0.95), "box": {"x": 100, "y": 0, "width": 100, "height": 50}},
        {"label": "cat", "confidence": pytest.approx(0.60), "box": {"x": 20, "y": 20, "width": 80, "height": 50}},
    ]


@pytest.mark.parametrize(
    "spec, field",
    [
        ({}, "size"),
        ({"size": [224]}, "size"),
        ({"size": [224, 0]}, "size"),
        ({"size": [224.0, 224]}, "size"),
        ({"size": [224, 224], "layout": "NCWH"}, "layout"),
        ({"size": [224, 224], "channel_order": "RGBA"}, "channel_order"),
        ({"size": [224, 224], "mean": [0.4, 0.5]}, "mean"),
        ({"size": [224, 224], "std": [0.2, 0.0, 0.2]}, "std"),
        ({"size": [224, 224], "scale": -1}, "scale"),
        ({"size": [224, 224], "scale": float("nan")}, "scale"),
        ({"size": [224, 224], "colour": "RGB"}, "colour"),
        ("224x224", "object"),
    ],
)
def test_bad_input_specs_are_rejected_naming_the_field(spec, field):
    with pytest.raises(InvalidRequest, match=field) as error:
        validate_input_spec(spec)
    assert error.value.code == "invalid_input_spec"


def test_input_spec_defaults_and_normalisation():
    spec = validate_input_spec(
        {
            "size": [224, 224],
            "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225],
            "channel_order": "rgb",
            "layout": "nchw",
        }
    )
    assert spec.channel_order == "RGB" and spec.scale == pytest.approx(1 / 255) and spec.output == "auto"
    assert validate_input_spec(spec.to_dict()) == spec
    gray = validate_input_spec({"size": [28, 28], "channel_order": "GRAY", "mean": [0.5]})
    assert (gray.channels, gray.mean, gray.std) == (1, (0.5,), (1.0,))
    assert isinstance(validate_input_spec(gray), InputSpec)


# --- artifacts -----------------------------------------------------------------------------------


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXELAKE_TMP", str(tmp_path))
    reset_settings()
    yield tmp_path
    reset_settings()


def test_artifacts_are_verified_cached_and_loaded(tmp_cache):
    data = colour_net()
    digest = sha256_of(data)
    assert cached_artifact(digest) is None
    path = store_artifact(data, digest.upper())
    assert path == tmp_cache / "models" / digest and sha256_of(path) == digest
    assert cached_artifact(digest) == path and load_artifact(path, digest) == data
    assert OnnxModel(path, SPEC, ["red", "blue"]).predict(flat(RED_BGR))[0]["label"] == "red"
    path.write_bytes(data[:-1])  # corrupted on disk: dropped, to be downloaded again
    assert cached_artifact(digest) is None and not path.exists()


def test_sha256_mismatch_and_bad_hashes_are_rejected(tmp_cache):
    data = colour_net()
    with pytest.raises(ArtifactMismatch):
        load_artifact(data, sha256_of(data + b"x"))
    with pytest.raises(ArtifactMismatch):
        store_artifact(data, "0" * 64)
    assert not (tmp_cache / "models" / ("0" * 64)).exists()
    for bad in ("../../etc/passwd", "abc", "g" * 64):
        with pytest.raises(InvalidRequest):
            artifact_path(bad)


# --- scikit-learn --------------------------------------------------------------------------------


def test_sklearn_pipeline_saved_with_skops_predicts_like_the_original(tmp_path):
    iris = load_iris()
    estimator = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(iris.data, iris.target)
    path = tmp_path / "iris.skops"
    skops.io.dump(estimator, path)
    model = SklearnModel.load(path, labels=list(iris.target_names))
    row = iris.data[120]
    expected = estimator.predict_proba([row])[0]
    prediction = model.predict(row.tolist(), top_k=3)
    assert prediction[0]["label"] == iris.target_names[estimator.predict([row])[0]]
    assert sorted(p["confidence"] for p in prediction) == pytest.approx(sorted(expected), abs=1e-6)
    assert [p["confidence"] for p in prediction] == sorted((p["confidence"] for p in prediction), reverse=True)
    assert len(model.predict_many(iris.data[:5], top_k=1)) == 5


def test_sklearn_forest_on_digits_needs_the_tree_type_and_gets_it():
    digits = load_digits()
    forest = RandomForestClassifier(n_estimators=10, random_state=0).fit(digits.data[:1000], digits.target[:1000])
    data = skops.io.dumps(forest)
    assert skops.io.get_untrusted_types(data=data) == ["sklearn.tree._tree.Tree"]
    model = SklearnModel.load(data)
    right = sum(
        model.predict(x, top_k=1)[0]["label"] == str(y)
        for x, y in zip(digits.data[1000:1100], digits.target[1000:1100])
    )
    assert right >= 85


def test_sklearn_decision_function_models_get_softmax_confidences():
    iris = load_iris()
    binary = iris.target == 0
    svm = LinearSVC().fit(iris.data, binary)
    model = SklearnModel.load(skops.io.dumps(svm))
    score = svm.decision_function(iris.data[:1])[0]
    top = model.predict(iris.data[0])
    assert top[0]["label"] == "True" and top[0]["confidence"] == pytest.approx(1 / (1 + math.exp(-score)), abs=1e-6)
    multi = SklearnModel.load(skops.io.dumps(LinearSVC().fit(iris.data, iris.target)))
    assert sum(p["confidence"] for p in multi.predict(iris.data[100])) == pytest.approx(1.0)


def test_sklearn_refuses_untrusted_types_and_wrong_features():
    iris = load_iris()
    sneaky = make_pipeline(FunctionTransformer(operator.neg), LogisticRegression(max_iter=500)).fit(
        iris.data, iris.target
    )
    with pytest.raises(InvalidRequest, match=r"_operator\.neg") as refused:
        SklearnModel.load(skops.io.dumps(sneaky))
    assert refused.value.code == "untrusted_model"
    with pytest.raises(InvalidRequest) as not_skops:
        SklearnModel.load(b"\x80\x04pickle")
    assert not_skops.value.code == "invalid_model"
    model = SklearnModel.load(skops.io.dumps(LogisticRegression(max_iter=500).fit(iris.data, iris.target)))
    with pytest.raises(InvalidRequest, match="4 features"):
        model.predict([1.0, 2.0])
    with pytest.raises(InvalidRequest, match="finite"):
        model.predict([1.0, 2.0, float("nan"), 0.0])
    with pytest.raises(InvalidRequest, match="classifier"):
        SklearnModel.load(skops.io.dumps(StandardScaler().fit(iris.data)))


def test_sklearn_classifies_pixels_alone_as_it_does_the_file():
    # An AnalysisInput made from pixels has no file bytes: the feature is computed from the pixels
    # (it used to be handed None as the file and fail).
    photos = {name: load_sample_image(f"{name}.jpg") for name in ("china", "flower")}  # RGB, from scikit-learn
    files = {}
    for name, rgb in photos.items():
        out = io.BytesIO()
        Image.fromarray(rgb).save(out, "PNG")  # lossless: the file decodes to exactly these pixels
        files[name] = out.getvalue()
    params = {"bins": 8}
    X = [extract(files[name], "color_histogram", params) for name in photos]
    estimator = LogisticRegression(max_iter=500).fit(X, list(photos))
    model = SklearnModel(estimator, feature="color_histogram", feature_params=params)
    for name, rgb in photos.items():
        from_file = model.classify(AnalysisInput.from_bytes(files[name]), top_k=2)
        from_pixels = model.classify(AnalysisInput(array=np.ascontiguousarray(rgb[:, :, ::-1])), top_k=2)  # BGR
        assert from_pixels[0]["label"] == name
        assert [p["label"] for p in from_pixels] == [p["label"] for p in from_file]
        assert [p["confidence"] for p in from_pixels] == pytest.approx([p["confidence"] for p in from_file], abs=1e-9)
