"""Small ONNX networks built in the tests (no weights to download)."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper


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
