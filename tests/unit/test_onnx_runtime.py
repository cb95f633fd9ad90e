"""Registered ONNX models on onnxruntime: the graph reader against onnx's own parser, metadata
checks, preprocessing against a bare session.run, YOLO heads with planted outputs, NMS,
segmentation masks, embeddings, threads, and the whole path with OpenCV unimportable."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx_nets import colour_embedder, detector_net, dynamic_classifier, planted_head, red_segmenter
from PIL import Image

from chalicelib.errors import InvalidRequest
from chalicelib.imaging.analyzers import AnalysisInput
from chalicelib.ml import onnx_runtime
from chalicelib.ml.model_spec import check_graph, validate_input_spec
from chalicelib.ml.onnx_graph import NotOnnx, signature
from chalicelib.ml.onnx_runtime import OrtModel, nms
from chalicelib.ml.runtimes import run_model

PROJECT_DIR = Path(__file__).resolve().parents[2]


def png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8), "RGB").save(out, "PNG")
    return out.getvalue()


def flat(colour, size=(60, 40)) -> AnalysisInput:
    return AnalysisInput.from_bytes(png(np.full((size[1], size[0], 3), colour)))


def saved(tmp_path, data: bytes, name="model.onnx") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_the_graph_reader_agrees_with_onnx_on_names_types_and_dynamic_dims():
    for data in (
        dynamic_classifier(),
        red_segmenter(),
        planted_head(np.zeros((1, 6, 4))),
        detector_net(np.zeros((1, 7))),
    ):
        reference = onnx.load_from_string(data).graph
        ours = signature(data)

        def dims(value_info):
            return tuple(
                d.dim_param if d.HasField("dim_param") else d.dim_value for d in value_info.type.tensor_type.shape.dim
            )

        assert [(t.name, t.shape) for t in ours.inputs] == [(i.name, dims(i)) for i in reference.input]
        assert [(t.name, t.shape) for t in ours.outputs] == [(o.name, dims(o)) for o in reference.output]
        assert {t.elem_type for t in ours.inputs + ours.outputs} == {"float"}
    assert signature(dynamic_classifier()).inputs[0].shape == ("batch", 3, "height", "width")
    for junk in (b"", b"<html>not a model</html>", b"\x08\x07" + b"\xff" * 10):
        with pytest.raises(NotOnnx):
            signature(junk)


def spec(**fields) -> object:
    return validate_input_spec(fields, size_optional=True)


def mismatch(graph_bytes, task="classify", labels=(), **fields) -> str:
    with pytest.raises(InvalidRequest) as refused:
        check_graph(signature(graph_bytes), spec(**fields), task, list(labels))
    assert refused.value.code == "model_mismatch"
    return str(refused.value)


def test_metadata_is_checked_against_the_graph_and_the_mismatch_is_named():
    fixed = planted_head(np.zeros((1, 6, 10)))
    # A fixed-size input fills in a missing size; a dynamic one needs it.
    assert check_graph(signature(fixed), spec(head="yolov8"), "detect", ["a", "b"]).size == (64, 64)
    assert "dynamic" in mismatch(dynamic_classifier())
    assert check_graph(signature(dynamic_classifier()), spec(size=[20, 10]), "classify", ["r", "b"]).size == (20, 10)
    assert "64×64" in mismatch(fixed, "detect", size=[32, 32], head="yolov8")
    assert "3 channel(s) at position 1 (NCHW), but channel_order GRAY gives 1" in mismatch(
        fixed, "detect", channel_order="GRAY", head="yolov8"
    )
    assert "but 3 labels" in mismatch(dynamic_classifier(), labels=["r", "g", "b"], size=[8, 8])
    assert "2 classes (4 + classes channels), but 3 labels" in mismatch(fixed, "detect", ["a", "b", "c"], head="yolov8")
    assert "yolov5" in mismatch(planted_head(np.zeros((1, 10, 5))), "detect", head="yolov5")
    assert "rows of 7" in mismatch(planted_head(np.zeros((1, 10, 6))), "detect", head="ssd")
    assert "crop" in mismatch(red_segmenter(), "segment", resize="crop")
    assert "64 channel(s) at position 3 (NHWC)" in mismatch(fixed, "detect", layout="NHWC", head="yolov8")


def test_a_dynamic_classifier_matches_a_bare_onnxruntime_session(tmp_path):
    data = dynamic_classifier(4.0)
    model = OrtModel(saved(tmp_path, data), {"size": [48, 24], "scale": 1 / 255}, ["red", "blue"])
    reference = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (31, 57, 3), dtype=np.uint8)
    found = model.classify(AnalysisInput.from_bytes(png(pixels)), top_k=2)
    # The reference: Pillow's bilinear resize to 48×24, RGB, 0..1, NCHW, then the bare session and a softmax.
    resized = np.asarray(Image.fromarray(pixels).resize((48, 24), Image.Resampling.BILINEAR), np.float32) / 255
    logits = reference.run(None, {"pixels": resized.transpose(2, 0, 1)[None]})[0][0].astype(np.float64)
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    by_label = {p["label"]: p["confidence"] for p in found}
    assert by_label == pytest.approx({"red": expected[0], "blue": expected[1]}, abs=1e-6)
    # The batch and size are dynamic: another size runs on the same session.
    other = OrtModel(saved(tmp_path, data, "again.onnx"), {"size": [16, 64]}, ["red", "blue"])
    assert other.classify(flat((250, 0, 0)), 1)[0]["label"] == "red"


def yolov8_planted(boxes_in_image, geometry) -> np.ndarray:
    """[1, 4 + 2, N] rows of (cx, cy, w, h) in input pixels and two class scores."""
    sx, sy = geometry["scale"]
    dx, dy = geometry["offset"]
    columns = []
    for (cx, cy, w, h), scores in boxes_in_image:
        columns.append([cx * sx + dx, cy * sy + dy, w * sx, h * sy, *scores])
    return np.array(columns, np.float32).T[None]


def test_a_yolov8_head_with_planted_outputs_gives_boxes_in_image_pixels_after_class_aware_nms(tmp_path):
    # A 200×100 image letterboxed into 64×64: scale 0.32, 16 px of grey above and below.
    geometry = {"scale": (0.32, 0.32), "offset": (0, 16)}
    planted = yolov8_planted(
        [
            ((50, 50, 40, 40), (0.9, 0.1)),  # a person
            ((52, 50, 40, 40), (0.8, 0.05)),  # the same person again, less sure: suppressed
            ((52, 50, 40, 40), (0.02, 0.7)),  # a dog in the same place: another class, kept
            ((150, 50, 30, 30), (0.01, 0.3)),  # under the confidence threshold
        ],
        geometry,
    )
    model = OrtModel(
        saved(tmp_path, planted_head(planted)),
        {"size": [64, 64], "resize": "letterbox", "head": "yolov8"},
        ["person", "dog"],
    )
    source = flat((10, 200, 10), size=(200, 100))
    found = run_model(model, "detect", source, {"min_confidence": 0.5}).body["predictions"]
    assert [(d["label"], d["confidence"]) for d in found] == [
        ("person", pytest.approx(0.9)),
        ("dog", pytest.approx(0.7)),
    ]
    assert found[0]["box"] == {"x": 30, "y": 30, "width": 40, "height": 40}
    assert found[1]["box"] == {"x": 32, "y": 30, "width": 40, "height": 40}
    # A looser NMS keeps the duplicate; a tighter threshold drops the dog.
    loose = run_model(model, "detect", source, {"min_confidence": 0.5, "iou_threshold": 0.95}).body["predictions"]
    assert [d["label"] for d in loose] == ["person", "person", "dog"]
    strict = run_model(model, "detect", source, {"min_confidence": 0.75}).body["predictions"]
    assert [d["label"] for d in strict] == ["person"]


def test_a_yolov5_head_multiplies_objectness_and_class_scores(tmp_path):
    rows = np.array([[[32, 32, 20, 20, 0.5, 0.9, 0.2], [10, 10, 8, 8, 0.9, 0.1, 0.95]]], np.float32)  # [1, 2, 5 + 2]
    model = OrtModel(saved(tmp_path, planted_head(rows)), {"size": [64, 64], "head": "yolov5"}, ["cat", "car"])
    found = model.detect(flat((0, 0, 0), size=(128, 64)), min_confidence=0.4)
    # Stretch: x × 2, y × 1.
    assert [(d["label"], d["confidence"], d["box"]) for d in found] == [
        ("car", pytest.approx(0.855), {"x": 12, "y": 6, "width": 16, "height": 8}),
        ("cat", pytest.approx(0.45), {"x": 44, "y": 22, "width": 40, "height": 20}),
    ]


def test_nms_suppresses_within_a_class_only():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [1, 1, 11, 11], [50, 50, 60, 60]], np.float64)
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    classes = np.array([0, 0, 1, 0])
    assert nms(boxes, scores, classes, 0.5).tolist() == [0, 2, 3]
    assert nms(boxes, scores, classes, 0.9).tolist() == [0, 1, 2, 3]  # IoU 0.68 < 0.9


@pytest.mark.parametrize(
    ("resize", "size"),
    [("stretch", (60, 40)), ("letterbox", (60, 30)), ("letterbox", (30, 60))],
)
def test_segmentation_gives_a_class_map_at_the_image_size_and_class_shares(tmp_path, resize, size):
    width, height = size
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, : width // 2] = (230, 0, 0)  # red left half
    pixels[:, width // 2 :] = (0, 0, 230)  # blue right half
    model = OrtModel(saved(tmp_path, red_segmenter(32)), {"size": [32, 32], "resize": resize}, ["sky", "apple"])
    output = run_model(model, "segment", AnalysisInput.from_bytes(png(pixels)), {})
    mask = output.mask
    assert mask.shape == (height, width) and mask.dtype == np.uint8
    margin = max(3, width // 10)
    assert (mask[:, : width // 2 - margin] == 1).all() and (mask[:, width // 2 + margin :] == 0).all()
    shares = {c["label"]: c["share"] for c in output.body["classes"]}
    assert shares["apple"] == pytest.approx(0.5, abs=0.08) and sum(shares.values()) == pytest.approx(1.0)


def test_embeddings_are_the_networks_output_l2_normalised_on_request(tmp_path):
    projection = np.random.default_rng(1).standard_normal((8, 3))
    model = OrtModel(saved(tmp_path, colour_embedder(projection)), {"size": [16, 16]})
    raw = run_model(model, "embed", flat((255, 128, 0)), {"normalize": False})
    expected = projection.astype(np.float32) @ np.array([1.0, 128 / 255, 0.0], np.float32) + 0.01
    assert raw.embedding == pytest.approx(expected, abs=1e-4)
    unit = run_model(model, "embed", flat((255, 128, 0)), {})
    assert float(np.linalg.norm(unit.embedding)) == pytest.approx(1.0, abs=1e-6)
    assert unit.embedding == pytest.approx(expected / np.linalg.norm(expected), abs=1e-5)
    assert unit.body == {"dimensions": 8, "norm": pytest.approx(1.0, abs=1e-6), "normalized": True}


def test_sessions_are_shared_per_artifact_and_threads_follow_lambda_memory(tmp_path, monkeypatch):
    from chalicelib.config import reset_settings

    path = saved(tmp_path, dynamic_classifier())
    first = OrtModel(path, {"size": [8, 8]}, sha256="a" * 64)
    second = OrtModel(path, {"size": [16, 16]}, sha256="a" * 64)
    assert first.session is second.session
    onnx_runtime.forget_session("a" * 64)
    assert OrtModel(path, {"size": [8, 8]}, sha256="a" * 64).session is not first.session
    for memory, threads in (("1024", 1), ("1769", 1), ("3538", 2), ("3008", 2), ("10240", 6)):
        monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory)
        assert onnx_runtime.intra_op_threads() == threads
    monkeypatch.setenv("PIXELAKE_ONNX_THREADS", "3")
    reset_settings()
    try:
        assert onnx_runtime.intra_op_threads() == 3
        assert onnx_runtime.new_session(path).get_session_options().intra_op_num_threads == 3
    finally:
        monkeypatch.delenv("PIXELAKE_ONNX_THREADS")
        reset_settings()


def test_a_file_onnxruntime_refuses_is_an_invalid_model(tmp_path):
    broken = onnx.load_from_string(dynamic_classifier())
    broken.graph.node[0].op_type = "NoSuchOperator"
    with pytest.raises(InvalidRequest) as refused:
        OrtModel(saved(tmp_path, broken.SerializeToString()), {"size": [8, 8]})
    assert refused.value.code == "invalid_model"


# The inference Lambda layer has no OpenCV: the onnxruntime path must run with cv2 unimportable.
WITHOUT_OPENCV = """
import sys
sys.modules["cv2"] = None  # any `import cv2` now raises ImportError
from pathlib import Path
from chalicelib.imaging.analyzers import AnalysisInput
from chalicelib.services.model_runs import ModelArtifact, load
from chalicelib.ml.runtimes import run_model
path = Path(sys.argv[1])
spec = {"size": [16, 16], "resize": "letterbox"}
model = load(ModelArtifact(1, "colours", 1, "onnx", "classify", "k", "0" * 64, spec, ["red", "blue"]), path)
print(run_model(model, "classify", AnalysisInput.from_bytes(Path(sys.argv[2]).read_bytes()), {}).body["predictions"][0]["label"])
"""


def test_onnx_models_run_without_opencv(tmp_path):
    image = tmp_path / "blue.png"
    image.write_bytes(png(np.full((30, 50, 3), (0, 0, 240))))
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_OPENCV, str(saved(tmp_path, dynamic_classifier())), str(image)],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "blue"


def test_a_large_jpeg_is_decoded_reduced_and_boxes_still_come_in_stored_pixels(tmp_path):
    # 1600×800 letterboxed into 64×64: scale 0.04, 16 px of grey above and below; decoded at 1/8.
    planted = yolov8_planted([((400, 300, 200, 100), (0.9, 0.0))], {"scale": (0.04, 0.04), "offset": (0, 16)})
    model = OrtModel(
        saved(tmp_path, planted_head(planted)),
        {"size": [64, 64], "resize": "letterbox", "head": "yolov8"},
        ["car", "x"],
    )
    out = io.BytesIO()
    Image.new("RGB", (1600, 800), (120, 130, 140)).save(out, "JPEG", quality=90)
    source = AnalysisInput.from_bytes(out.getvalue())
    assert onnx_runtime.decoded(source, model.input_spec).size == (200, 100)
    found = model.detect(source, min_confidence=0.5)
    assert found == [
        {"label": "car", "confidence": pytest.approx(0.9), "box": {"x": 300, "y": 250, "width": 200, "height": 100}}
    ]
