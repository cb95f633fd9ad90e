"""Small ONNX networks built in the tests (no weights to download), and their registration."""

from __future__ import annotations

import io
import json

import numpy as np
from onnx import TensorProto, helper, numpy_helper
from PIL import Image


def detector_net(rows: np.ndarray) -> bytes:
    """An SSD-style head that outputs fixed detections whatever the input (input · 0 + rows)."""
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["input"], ["mean"], keepdims=1),
            helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
            helper.make_node("Add", ["nothing", "rows"], ["detections"]),
        ],
        "detector",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("detections", TensorProto.FLOAT, [1, 1, len(rows), 7])],
        [
            numpy_helper.from_array(np.zeros((1, 1, 1, 1), np.float32), "zero"),
            numpy_helper.from_array(rows.reshape(1, 1, -1, 7).astype(np.float32), "rows"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def _model(graph) -> bytes:
    import onnx

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def dynamic_classifier(gain: float = 4.0) -> bytes:
    """logits = gain · (mean red, mean blue) for any batch and any image size: [batch, 3, height, width] → [batch, 2]."""
    weights = np.array([[gain, 0.0, 0.0], [0.0, 0.0, gain]], np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["pixels"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("Gemm", ["flat", "W", "b"], ["logits"], transB=1),
        ],
        "dynamic_colour",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])],
        [numpy_helper.from_array(weights, "W"), numpy_helper.from_array(np.zeros(2, np.float32), "b")],
    )
    return _model(graph)


def planted_head(planted: np.ndarray, size: int = 64, input_name: str = "images") -> bytes:
    """A detector whose one output is `planted` (e.g. YOLOv8's [1, 4 + classes, boxes]) whatever the image."""
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", [input_name], ["mean"], keepdims=1),
            helper.make_node("Reshape", ["mean", "one_shape"], ["scalar"]),
            helper.make_node("Mul", ["scalar", "zero"], ["nothing"]),
            helper.make_node("Add", ["nothing", "planted"], ["output0"]),
        ],
        "planted_head",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(planted.shape))],
        [
            numpy_helper.from_array(np.array([1] * planted.ndim, np.int64), "one_shape"),
            numpy_helper.from_array(np.zeros([1] * planted.ndim, np.float32), "zero"),
            numpy_helper.from_array(planted.astype(np.float32), "planted"),
        ],
    )
    return _model(graph)


def red_segmenter(size: int = 32) -> bytes:
    """Per-pixel scores [1, 2, size, size]: class 0 = blue, class 1 = red (a 1×1 convolution)."""
    weights = np.zeros((2, 3, 1, 1), np.float32)
    weights[0, 2], weights[1, 0] = 1.0, 1.0
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "W"], ["scores"])],
        "red_segmenter",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 2, size, size])],
        [numpy_helper.from_array(weights, "W")],
    )
    return _model(graph)


def colour_embedder(projection: np.ndarray) -> bytes:
    """embedding = projection @ (mean R, G, B of the 0..1 pixels) + 0.01: [1, 3, 16, 16] → [1, D]."""
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("Gemm", ["flat", "W", "b"], ["embedding"], transB=1),
        ],
        "colour_embedder",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, projection.shape[0]])],
        [
            numpy_helper.from_array(projection.astype(np.float32), "W"),
            numpy_helper.from_array(np.full(projection.shape[0], 0.01, np.float32), "b"),
        ],
    )
    return _model(graph)


def tinted(rng, warm: bool, size=48) -> bytes:
    """A PNG for transfer learning: A smooth random texture t in 60..190 with luma exactly t: (t + d, t − d·.299/.587, t) or (t, t − d·.114/.587, t + d)."""
    coarse = rng.uniform(60, 190, (6, 6))
    t = np.asarray(Image.fromarray(coarse.astype(np.float32), "F").resize((size, size), Image.Resampling.BICUBIC))
    t = np.clip(t, 60, 190)
    d = 40.0
    if warm:
        rgb = np.stack([t + d, t - d * 0.299 / 0.587, t], axis=2)
    else:
        rgb = np.stack([t, t - d * 0.114 / 0.587, t + d], axis=2)
    out = io.BytesIO()
    Image.fromarray(np.clip(np.rint(rgb), 0, 255).astype(np.uint8), "RGB").save(out, "PNG")
    return out.getvalue()


BOUNDARY = "pixelakeonnxboundary"


def register(client, metadata: dict, data: bytes):
    """POST /api/models as multipart: the `metadata` JSON part and the ONNX `file`."""
    body = (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="metadata"\r\n'
            f"Content-Type: application/json\r\n\r\n{json.dumps(metadata)}\r\n"
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="model.onnx"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    return client.http.post(
        "/api/models", body=body, headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    )
