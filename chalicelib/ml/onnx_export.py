"""Trained scikit-learn classifiers as ONNX: on their own (to run elsewhere), or joined behind a
registered embedding model into one network (transfer learning: backbone + head in one task).

skl2onnx converts the fitted Pipeline (scaler + estimator) to an ONNX graph whose outputs are
`label` and `probabilities` (a [N, classes] tensor: ZipMap is switched off so onnxruntime
returns an array, in `classes_` order). Needs onnx + skl2onnx: the Dask workers and the tests
have them; no Lambda layer does (conversion happens where training happens).
"""

from __future__ import annotations

from typing import Any

from chalicelib.errors import InvalidRequest

HEAD_INPUT = "features"
PROBABILITIES = "probabilities"
ML_OPSET = 3  # ai.onnx.ml: the tree ensembles, scalers and linear classifiers skl2onnx emits
DEFAULT_OPSET = 17


def export_sklearn(model: Any, n_features: int, *, opset: int = DEFAULT_OPSET) -> bytes:
    """The fitted classifier (or Pipeline) as ONNX bytes: input `features` [N, n_features] float32,
    outputs `label` [N] and `probabilities` [N, classes]."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    final = ([step for _, step in getattr(model, "steps", [])] or [model])[-1]
    if not hasattr(final, "predict_proba"):
        raise InvalidRequest(
            f"a {type(final).__name__} gives no probabilities, and Pixelake's confidences for it (a softmax of its "
            "decision scores) are not part of an ONNX export; train it with logistic_regression, random_forest, "
            "mlp or knn to export it",
            code="export_unsupported",
        )
    try:
        onnx_model = convert_sklearn(
            model,
            initial_types=[(HEAD_INPUT, FloatTensorType([None, int(n_features)]))],
            options={id(step): {"zipmap": False} for step in _classifiers(model)},
            target_opset={"": opset, "ai.onnx.ml": ML_OPSET},
        )
    except Exception as exc:  # skl2onnx raises RuntimeError/NotImplementedError for what it cannot convert
        raise InvalidRequest(
            f"this {type(model).__name__} cannot be exported as ONNX: {exc}", code="export_unsupported"
        ) from None
    return onnx_model.SerializeToString()


def export_skops(data: bytes) -> bytes:
    """A registered or trained scikit-learn model (skops bytes) as ONNX (export_sklearn)."""
    from chalicelib.ml.training import load_model

    model = load_model(data)
    return export_sklearn(model, int(model.n_features_in_))


def _classifiers(model: Any) -> list:
    """The steps whose converter takes the zipmap option (those with probabilities)."""
    steps = [step for _, step in getattr(model, "steps", [])] or [model]
    return [step for step in steps if hasattr(step, "classes_") and hasattr(step, "predict_proba")]


def opset_of(model_bytes: bytes) -> int:
    import onnx

    model = onnx.load_from_string(model_bytes)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), DEFAULT_OPSET)


def compose_with_backbone(backbone: bytes, head: bytes, *, normalize: bool) -> bytes:
    """One ONNX classifier: the backbone's image input → its first output (flattened, L2-normalised
    when the head was trained on normalised embeddings) → the head → `probabilities`.

    The head must have been exported at the backbone's opset (export_sklearn(opset=opset_of(backbone))).
    """
    import onnx
    from onnx import compose, helper

    base = onnx.load_from_string(backbone)
    top = onnx.load_from_string(head)
    embedding = base.graph.output[0].name
    nodes = [helper.make_node("Flatten", [embedding], ["backbone/flat"], axis=1)]
    features = "backbone/flat"
    if normalize:
        nodes.append(helper.make_node("LpNormalization", [features], ["backbone/unit"], axis=1, p=2))
        features = "backbone/unit"
    base.graph.node.extend(nodes)
    del base.graph.output[:]
    base.graph.output.append(helper.make_tensor_value_info(features, onnx.TensorProto.FLOAT, None))
    top = compose.add_prefix(top, "head/")
    ir_version = max(base.ir_version, top.ir_version)
    base.ir_version = top.ir_version = ir_version
    imports = {(o.domain or ""): o.version for o in [*base.opset_import, *top.opset_import]}
    for model in (base, top):
        del model.opset_import[:]
        model.opset_import.extend(helper.make_opsetid(domain, version) for domain, version in sorted(imports.items()))
    merged = compose.merge_models(
        base, top, io_map=[(features, f"head/{HEAD_INPUT}")], outputs=[f"head/{PROBABILITIES}"]
    )
    onnx.checker.check_model(merged)
    return merged.SerializeToString()
