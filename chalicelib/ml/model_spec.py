"""How to run a model: its input spec (layout, size, colour order, normalisation, resize mode,
output head), checked against the graph's declared inputs and outputs at registration, and the
score helpers every runtime shares. No numpy at import: the api function validates specs.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib.errors import InvalidRequest

if TYPE_CHECKING:
    import numpy as np

    from chalicelib.ml.onnx_graph import GraphSignature

MAX_TOP_K = 100


@dataclass(frozen=True)
class InputSpec:
    """How an image becomes the network's input tensor, x = (pixel · scale − mean) / std, and how
    its outputs are read (`output` for classifiers, `head` for detectors)."""

    size: tuple[int, int] | None  # (width, height) the network takes; None: taken from the graph
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    channel_order: str = "RGB"  # RGB, BGR or GRAY
    layout: str = "NCHW"  # NCHW or NHWC
    scale: float = 1 / 255
    # stretch; crop: shorter side to size, centre crop; letterbox: longer side to size, padded
    # with grey 114 (what YOLO exports are trained with)
    resize: str = "stretch"
    output: str = "auto"  # classify: auto, logits (softmax applied) or probabilities
    head: str = "ssd"  # detect: ssd [N,7] rows, yolov5 [1,N,5+C], yolov8 / yolo11 [1,4+C,N]

    @property
    def channels(self) -> int:
        return 1 if self.channel_order == "GRAY" else 3

    def tensor(self, pixels: np.ndarray) -> np.ndarray:
        """The float32 batch of one (H, W, channels) uint8 image already in the network's size and
        channel order: (pixel · scale − mean) / std, one fused multiply-add per channel written
        straight into the layout's order (0.09 ms at 224², where the broadcast expression that
        made a float copy, two temporaries and a transposed copy took 1.4 ms)."""
        import numpy as np

        gain = np.float32(self.scale) / np.asarray(self.std, np.float32)
        offset = -np.asarray(self.mean, np.float32) / np.asarray(self.std, np.float32)
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        height, width, channels = pixels.shape
        if self.layout == "NCHW":
            batch = np.empty((1, channels, height, width), np.float32)
            planes, gain, offset = pixels.transpose(2, 0, 1), gain[:, None, None], offset[:, None, None]
        else:
            batch = np.empty((1, height, width, channels), np.float32)
            planes = pixels
        np.multiply(planes, gain, out=batch[0], dtype=np.float32)
        batch[0] += offset
        return batch

    def to_dict(self) -> dict:
        return {
            "size": list(self.size) if self.size else None,
            "mean": list(self.mean),
            "std": list(self.std),
            "channel_order": self.channel_order,
            "layout": self.layout,
            "scale": self.scale,
            "resize": self.resize,
            "output": self.output,
            "head": self.head,
        }


DETECTION_HEADS = ("ssd", "yolov5", "yolov8", "yolo11")
_SPEC_CHOICES = {
    "channel_order": ("RGB", "BGR", "GRAY"),
    "layout": ("NCHW", "NHWC"),
    "resize": ("stretch", "crop", "letterbox"),
    "output": ("auto", "logits", "probabilities"),
    "head": DETECTION_HEADS,
}


def validate_input_spec(spec: dict | InputSpec, *, size_optional: bool = False) -> InputSpec:
    """A checked InputSpec from its JSON form; raises InvalidRequest naming the bad field.

    `size_optional`: the size may be left out (or null) when the graph fixes it (onnxruntime
    models: registration reads it from the graph).
    """
    if isinstance(spec, InputSpec):
        return spec
    if not isinstance(spec, dict):
        raise InvalidRequest("'input_spec' must be an object", code="invalid_input_spec")
    unknown = sorted(set(spec) - set(InputSpec.__dataclass_fields__))
    if unknown:
        raise InvalidRequest(
            f"unknown input_spec field(s) {unknown}",
            code="invalid_input_spec",
            allowed=sorted(InputSpec.__dataclass_fields__),
        )
    if spec.get("size") is None and not size_optional:
        raise InvalidRequest("input_spec needs 'size': [width, height]", code="invalid_input_spec")
    values: dict[str, Any] = {}
    for name, choices in _SPEC_CHOICES.items():
        if name in spec:
            value = (
                spec[name].upper()
                if name in ("channel_order", "layout") and isinstance(spec[name], str)
                else spec[name]
            )
            if value not in choices:
                raise InvalidRequest(
                    f"input_spec '{name}' must be one of {list(choices)}, got {spec[name]!r}",
                    code="invalid_input_spec",
                    allowed=list(choices),
                )
            values[name] = value
    values["size"] = (
        tuple(_numbers(spec["size"], "size", 2, 2, integer=True, minimum=1, maximum=4096))
        if spec.get("size") is not None
        else None
    )
    channels = 1 if values.get("channel_order") == "GRAY" else 3
    for name, default in (("mean", 0.0), ("std", 1.0)):
        if name in spec:  # one value for every channel, or one per channel
            numbers = _numbers(spec[name], name, 1, channels)
            if len(numbers) not in (1, channels):
                raise InvalidRequest(f"input_spec '{name}' needs 1 or {channels} values", code="invalid_input_spec")
            values[name] = tuple(numbers * channels if len(numbers) == 1 else numbers)
        else:
            values[name] = (default,) * channels
    if any(s == 0 for s in values["std"]):
        raise InvalidRequest("input_spec 'std' values must not be 0", code="invalid_input_spec")
    if "scale" in spec:
        values["scale"] = _numbers([spec["scale"]], "scale", 1, 1)[0]
        if values["scale"] <= 0:
            raise InvalidRequest("input_spec 'scale' must be > 0", code="invalid_input_spec")
    return InputSpec(**values)


def _numbers(
    value: Any,
    name: str,
    least: int,
    most: int,
    *,
    integer: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
) -> list:
    if not isinstance(value, (list, tuple)) or not least <= len(value) <= most:
        count = str(least) if least == most else f"{least}..{most}"
        raise InvalidRequest(f"input_spec '{name}' must be a list of {count} numbers", code="invalid_input_spec")
    numbers = []
    for v in value:
        ok = isinstance(v, int) if integer else isinstance(v, (int, float))
        if not ok or isinstance(v, bool) or (isinstance(v, float) and not math.isfinite(v)):
            kind = "integers" if integer else "finite numbers"
            raise InvalidRequest(f"input_spec '{name}' must hold {kind}, got {v!r}", code="invalid_input_spec")
        if (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
            raise InvalidRequest(
                f"input_spec '{name}' values must be within {minimum}..{maximum}", code="invalid_input_spec"
            )
        numbers.append(v if integer else float(v))
    return numbers


def _mismatch(message: str) -> InvalidRequest:
    return InvalidRequest(message, code="model_mismatch")


def _image_dims(spec: InputSpec) -> tuple[int, int, int]:
    """Positions of (channels, height, width) in the input tensor's shape."""
    return (1, 2, 3) if spec.layout == "NCHW" else (3, 1, 2)


def check_graph(graph: GraphSignature, spec: InputSpec, task: str, labels: list[str]) -> InputSpec:
    """The spec, its size filled from the graph when left out, after checking that the graph's one
    input and its outputs fit the metadata; raises InvalidRequest (code model_mismatch) naming
    the tensor and the dimension that do not."""
    if len(graph.inputs) != 1:
        names = [i.name for i in graph.inputs]
        raise _mismatch(f"the model takes {len(names)} inputs {names}; Pixelake feeds one image tensor")
    tensor = graph.inputs[0]
    if tensor.elem_type != "float":
        raise _mismatch(f"input {tensor.name!r} is {tensor.elem_type}; Pixelake feeds float32 tensors")
    size = spec.size
    if tensor.shape is not None:
        if len(tensor.shape) != 4:
            raise _mismatch(
                f"input {tensor.name!r} is {tensor.dims_text()}: a {len(tensor.shape)}-D tensor, "
                f"not an {spec.layout} image batch"
            )
        c, h, w = _image_dims(spec)
        batch, channels, height, width = tensor.shape[0], tensor.shape[c], tensor.shape[h], tensor.shape[w]
        if isinstance(batch, int) and batch != 1:
            raise _mismatch(f"input {tensor.name!r} is {tensor.dims_text()}: a fixed batch of {batch}, not 1")
        if isinstance(channels, int) and channels != spec.channels:
            raise _mismatch(
                f"input {tensor.name!r} is {tensor.dims_text()}: {channels} channel(s) at position {c} "
                f"({spec.layout}), but channel_order {spec.channel_order} gives {spec.channels}"
            )
        fixed = isinstance(height, int) and isinstance(width, int)
        if fixed and size is not None and (width, height) != tuple(size):
            raise _mismatch(
                f"input {tensor.name!r} is {tensor.dims_text()}: {width}×{height} pixels, "
                f"but input_spec size is {size[0]}×{size[1]}"
            )
        if isinstance(width, int) and isinstance(height, int) and size is None:
            size = (width, height)
    if size is None:
        raise _mismatch(
            f"input {tensor.name!r} is {tensor.dims_text()}: its size is dynamic; "
            "give input_spec 'size': [width, height] to resize images to"
        )
    _check_outputs(graph, spec, task, labels)
    return dataclasses.replace(spec, size=size)


def _check_outputs(graph: GraphSignature, spec: InputSpec, task: str, labels: list[str]) -> None:
    out = graph.outputs[0]
    shape = out.shape
    if shape is None:
        return  # nothing declared: the first run will tell
    said = f"output {out.name!r} is {out.dims_text()}"

    def classes(count: int | str | None, what: str) -> None:
        if isinstance(count, int) and labels and count != len(labels):
            raise _mismatch(f"{said}: {count} {what}, but {len(labels)} labels were given")

    if task == "classify" or task == "embed":
        rest = [d for d in shape[1:] if d != 1]
        if len(rest) > 1:
            raise _mismatch(f"{said}: a {task} model's output must be one vector per image")
        if task == "classify":
            classes(rest[0] if rest else 1, "classes")
    elif task == "detect":
        if spec.head == "ssd":
            if isinstance(shape[-1], int) and shape[-1] != 7:
                raise _mismatch(f"{said}: an ssd head gives rows of 7 (image, class, score, x1, y1, x2, y2)")
        elif len(shape) != 3:
            raise _mismatch(f"{said}: a {spec.head} head gives a 3-D [1, …] tensor")
        elif spec.head == "yolov5":
            if isinstance(shape[2], int):
                if shape[2] < 6:
                    raise _mismatch(f"{said}: a yolov5 head gives rows of 5 + classes (box, objectness, scores)")
                classes(shape[2] - 5, "classes (rows of 5 + classes)")
        elif isinstance(shape[1], int):  # yolov8 / yolo11: [1, 4 + classes, anchors]
            if shape[1] < 5:
                raise _mismatch(f"{said}: a {spec.head} head gives [1, 4 + classes, boxes]")
            classes(shape[1] - 4, "classes (4 + classes channels)")
    elif task == "segment":
        if spec.resize == "crop":
            raise _mismatch(
                "a segmentation model must see the whole image: resize 'stretch' or 'letterbox', not 'crop'"
            )
        if len(shape) == 4:
            if isinstance(shape[1], int) and shape[1] > 1:
                classes(shape[1], "class channels")
        elif len(shape) != 3:
            raise _mismatch(f"{said}: a segmentation model gives [1, classes, h, w] scores or a [1, h, w] class map")


def softmax(scores: np.ndarray) -> np.ndarray:
    import numpy as np

    shifted = np.asarray(scores, dtype=np.float64) - np.max(scores)
    exp = np.exp(shifted)
    return exp / exp.sum()


def top_predictions(probabilities: np.ndarray, labels: list[str], top_k: int) -> list[dict]:
    import numpy as np

    top_k = max(1, min(int(top_k), MAX_TOP_K, len(probabilities)))
    order = np.argsort(-probabilities, kind="stable")[:top_k]
    return [{"label": labels[i], "confidence": round(float(probabilities[i]), 6)} for i in order]
