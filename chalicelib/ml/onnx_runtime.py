"""Registered ONNX models on onnxruntime: preprocessing, one session per model, output decoding.

numpy + Pillow + onnxruntime only (no OpenCV): this runs in the `inference` Lambda function,
whose layer is those three (OpenCV beside onnxruntime would not fit Lambda's 250 MB), and on
the Dask workers, which run the same code. The built-in face networks stay on cv2.dnn in the
imaging worker.

Sessions: one InferenceSession per artifact (keyed by sha256) for the container's life. Its
run() is thread-safe (onnxruntime documents concurrent Run calls on one session), so threads
share it without a lock; creating one is done under a lock so two threads do not both load a
100 MB model. Intra-op threads follow the vCPUs the function has (Lambda gives one vCPU per
1769 MB of memory), not os.cpu_count(), which reports the host's.

Geometry: every resize mode is an affine map from the stored image to the network input,
image_x = (input_x − offset_x) / scale_x, so detections come back in the stored (EXIF-oriented)
image's pixels and a segmentation map is cut back to the part of the input that is image.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib.errors import InvalidRequest
from chalicelib.ml.model_spec import InputSpec, softmax, top_predictions, validate_input_spec

if TYPE_CHECKING:
    import numpy as np
    import onnxruntime
    from PIL import Image

# Lambda: memory → vCPUs (one full vCPU per 1769 MB, at most 6 at 10240 MB).
LAMBDA_MB_PER_VCPU = 1769
LAMBDA_MAX_VCPUS = 6
LETTERBOX_GREY = 114  # the padding YOLO exports are trained with
DEFAULT_IOU_THRESHOLD = 0.45

_sessions: dict[str, onnxruntime.InferenceSession] = {}
_sessions_lock = threading.Lock()


def intra_op_threads() -> int:
    """Threads for one session's operators: the setting, else Lambda's vCPUs, else this process's CPUs."""
    from chalicelib.config import get_settings

    configured = get_settings().onnx_threads
    if configured > 0:
        return configured
    memory = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
    if memory and memory.isdigit():
        return max(1, min(LAMBDA_MAX_VCPUS, math.ceil(int(memory) / LAMBDA_MB_PER_VCPU)))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def session_for(path: str | os.PathLike, sha256: str) -> onnxruntime.InferenceSession:
    """The container's session for this artifact, created on first use."""
    session = _sessions.get(sha256)
    if session is not None:
        return session
    with _sessions_lock:
        session = _sessions.get(sha256)
        if session is None:
            session = new_session(path)
            _sessions[sha256] = session
        return session


def forget_session(sha256: str) -> None:
    """Drop a cached session (its model was evicted from the worker's cache)."""
    with _sessions_lock:
        _sessions.pop(sha256, None)


def new_session(path: str | os.PathLike | bytes) -> onnxruntime.InferenceSession:
    """An InferenceSession on the CPU with intra_op_threads(); InvalidRequest when onnxruntime refuses the file."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = intra_op_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: warnings about unused initializers are noise in the logs
    source = bytes(path) if isinstance(path, (bytes, bytearray)) else str(path)
    try:
        return onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/… types
        raise InvalidRequest(f"onnxruntime cannot load this model: {exc}", code="invalid_model") from None


@dataclass(frozen=True)
class Geometry:
    """input = image · scale + offset (per axis); `inner` is the input box that holds image pixels."""

    image_size: tuple[int, int]  # (width, height) of the stored image
    scale: tuple[float, float]
    offset: tuple[float, float]
    inner: tuple[int, int, int, int]  # left, top, right, bottom in input pixels

    def to_image(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (x - self.offset[0]) / self.scale[0], (y - self.offset[1]) / self.scale[1]


def stored_size(img: Image.Image) -> tuple[int, int]:
    """The stored (EXIF-oriented) image's size, also when a JPEG was decoded at a reduced scale."""
    original = img.info.get("original_size")
    if not original:
        return img.size
    width, height = original
    return (height, width) if img.info.get("orientation") in (5, 6, 7, 8) else (width, height)


def fit(img: Image.Image, spec: InputSpec) -> tuple[Image.Image, Geometry]:
    """The image resized into the network's input size as the spec says, and the map from the
    stored image (which `img` may be a reduced decode of) to the input."""
    from PIL import Image

    assert spec.size is not None, "registration fills the size from the graph"
    width, height = spec.size
    iw, ih = img.size
    fw, fh = stored_size(img)
    reduced = iw / fw, ih / fh  # < 1 when the JPEG was decoded at 1/2, 1/4 or 1/8

    def resize(
        image: Image.Image, size: tuple[int, int], box: tuple[float, float, float, float] | None = None
    ) -> Image.Image:
        # reducing_gap: integer box reduction first, then bilinear over at least 2× the target;
        # the same pixels to within a level, several times faster from a large picture.
        return image.resize(size, Image.Resampling.BILINEAR, box=box, reducing_gap=2.0)

    if spec.resize == "stretch":
        geometry = Geometry((fw, fh), (width / fw, height / fh), (0.0, 0.0), (0, 0, width, height))
        return resize(img, (width, height)), geometry
    if spec.resize == "crop":  # shorter side to fit, then the centre (the usual ImageNet preprocessing)
        s = max(width / iw, height / ih)
        rw, rh = max(width, round(iw * s)), max(height, round(ih * s))
        left, top = (rw - width) // 2, (rh - height) // 2
        # Only the part that survives the crop is resampled (a quarter less of a 4:3 photo).
        box = (left * iw / rw, top * ih / rh, (left + width) * iw / rw, (top + height) * ih / rh)
        cropped = resize(img, (width, height), box)
        scale = (rw / iw * reduced[0], rh / ih * reduced[1])
        return cropped, Geometry((fw, fh), scale, (-left, -top), (0, 0, width, height))
    s = min(width / iw, height / ih)  # letterbox: longer side to fit, centred on grey
    rw, rh = max(1, round(iw * s)), max(1, round(ih * s))
    left, top = (width - rw) // 2, (height - rh) // 2
    canvas = Image.new(img.mode, (width, height), (LETTERBOX_GREY,) * len(img.getbands()))
    canvas.paste(resize(img, (rw, rh)), (left, top))
    return canvas, Geometry((fw, fh), (rw / fw, rh / fh), (left, top), (left, top, left + rw, top + rh))


def decoded(source: Any, spec: InputSpec) -> Image.Image:
    """The source's picture, a JPEG decoded at the smallest DCT scale that still covers the input
    size (a 12 MP photo for a 224 px network decodes at 1/8: most of the preprocessing time)."""
    data = getattr(source, "data", None)
    if data is None or "pil" in getattr(source, "__dict__", {}):
        return getattr(source, "pil", source)
    from chalicelib.config import get_settings
    from chalicelib.imaging.imageio import decode

    assert spec.size is not None
    # Every side of the input must come from at least as many decoded pixels.
    return decode(data, max_pixels=get_settings().max_pixels, min_shortest_side=max(spec.size))


def input_tensor(img: Image.Image, spec: InputSpec) -> tuple[np.ndarray, Geometry]:
    """The float32 batch of one image for the network, and its geometry."""
    import numpy as np

    mode = "L" if spec.channel_order == "GRAY" else "RGB"
    if img.mode != mode:
        img = img.convert(mode)  # RGBA: alpha dropped
    fitted, geometry = fit(img, spec)
    pixels = np.asarray(fitted)
    if spec.channel_order == "BGR":
        pixels = pixels[:, :, ::-1]
    return spec.tensor(pixels), geometry


# --- decoding --------------------------------------------------------------------------------


def nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices kept by class-aware non-maximum suppression, best first.

    `boxes` are rows of x1, y1, x2, y2. A box is dropped when a better box of the same class
    overlaps it by more than `iou_threshold` (intersection over union); classes never suppress
    each other.
    """
    import numpy as np

    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        if not rest.size:
            break
        x1 = np.maximum(boxes[best, 0], boxes[rest, 0])
        y1 = np.maximum(boxes[best, 1], boxes[rest, 1])
        x2 = np.minimum(boxes[best, 2], boxes[rest, 2])
        y2 = np.minimum(boxes[best, 3], boxes[rest, 3])
        overlap = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        iou = overlap / np.maximum(areas[best] + areas[rest] - overlap, 1e-12)
        order = rest[(iou <= iou_threshold) | (classes[rest] != classes[best])]
    return np.asarray(keep, dtype=np.int64)


def detection_rows(output: np.ndarray, head: str, input_size: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """(boxes x1 y1 x2 y2 in input pixels, scores, class ids) of a detector's first output."""
    import numpy as np

    out = np.asarray(output, dtype=np.float64)
    if head == "ssd":  # rows of image_id, class, score, x1, y1, x2, y2 (corners as fractions of the input)
        rows = out.reshape(-1, 7)
        boxes = rows[:, 3:7] * np.array([input_size[0], input_size[1], input_size[0], input_size[1]], np.float64)
        return boxes, rows[:, 2], rows[:, 1].astype(np.int64)
    if out.ndim != 3:
        raise InvalidRequest(f"a {head} head's output must be [1, …, …], got {list(out.shape)}", code="model_failed")
    if head == "yolov5":  # [1, boxes, 5 + classes]: cx, cy, w, h, objectness, class scores
        rows = out[0]
        class_scores = rows[:, 5:] * rows[:, 4:5]
    else:  # yolov8 / yolo11: [1, 4 + classes, boxes], no objectness
        rows = out[0].T
        class_scores = rows[:, 4:]
    if class_scores.shape[1] == 0:
        raise InvalidRequest(f"the {head} head's output {list(out.shape)} has no class scores", code="model_failed")
    classes = np.argmax(class_scores, axis=1)
    scores = class_scores[np.arange(len(rows)), classes]
    cx, cy, w, h = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1), scores, classes


class OrtModel:
    """A registered ONNX model on onnxruntime: classify, detect, segment or embed one image."""

    def __init__(
        self,
        path: str | os.PathLike,
        input_spec: dict | InputSpec,
        labels: list[str] | None = None,
        *,
        sha256: str | None = None,
    ):
        self.input_spec = validate_input_spec(input_spec, size_optional=True)
        self.labels = [str(label) for label in labels] if labels else None
        self.session = session_for(path, sha256) if sha256 else new_session(path)
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise InvalidRequest(f"the model takes {len(inputs)} inputs; Pixelake feeds one", code="invalid_model")
        self.input_name = inputs[0].name
        if self.input_spec.size is None:  # registered before sizes were read from the graph
            shape = inputs[0].shape
            h, w = (shape[2], shape[3]) if self.input_spec.layout == "NCHW" else (shape[1], shape[2])
            if not (isinstance(h, int) and isinstance(w, int)):
                raise InvalidRequest("the model's input size is dynamic: input_spec needs 'size'", code="invalid_model")
            self.input_spec = validate_input_spec({**self.input_spec.to_dict(), "size": [w, h]})

    def label(self, index: int) -> str:
        return self.labels[index] if self.labels and 0 <= index < len(self.labels) else f"class_{index}"

    def forward(self, source: Any) -> tuple[list[np.ndarray], Geometry]:
        """The network's outputs for one image (an AnalysisInput or a Pillow image), and the image → input geometry."""
        x, geometry = input_tensor(decoded(source, self.input_spec), self.input_spec)
        try:
            outputs = self.session.run(None, {self.input_name: x})
        except Exception as exc:
            raise InvalidRequest(
                f"the model failed on this input (check input_spec): {exc}", code="model_failed"
            ) from None
        return outputs, geometry

    def classify(self, source: Any, top_k: int = 5) -> list[dict]:
        """[{label, confidence}] of the top_k classes, softmax (or the model's own) confidences, best first."""
        import numpy as np

        outputs, _ = self.forward(source)
        scores = np.asarray(outputs[0], dtype=np.float64).reshape(-1)
        if self.labels and len(self.labels) != len(scores):
            raise InvalidRequest(
                f"the model has {len(scores)} outputs but {len(self.labels)} labels", code="invalid_model"
            )
        output = self.input_spec.output
        if output == "auto":
            is_distribution = scores.min() >= 0 and scores.max() <= 1 and abs(scores.sum() - 1) < 1e-3
            output = "probabilities" if is_distribution else "logits"
        probabilities = scores if output == "probabilities" else softmax(scores)
        return top_predictions(probabilities, self.labels or [f"class_{i}" for i in range(len(scores))], top_k)

    def detect(
        self, source: Any, min_confidence: float = 0.5, iou_threshold: float = DEFAULT_IOU_THRESHOLD
    ) -> list[dict]:
        """[{label, confidence, box}] after the confidence threshold and class-aware NMS, best
        first; boxes in the stored image's pixels, clipped to it."""

        outputs, geometry = self.forward(source)
        assert self.input_spec.size is not None
        boxes, scores, classes = detection_rows(outputs[0], self.input_spec.head, self.input_spec.size)
        confident = scores >= min_confidence
        boxes, scores, classes = boxes[confident], scores[confident], classes[confident]
        keep = nms(boxes, scores, classes, iou_threshold)
        width, height = geometry.image_size
        found = []
        for i in keep:
            x1, y1 = geometry.to_image(boxes[i, 0], boxes[i, 1])
            x2, y2 = geometry.to_image(boxes[i, 2], boxes[i, 3])
            left, top = max(0, round(float(x1))), max(0, round(float(y1)))
            right, bottom = min(width, round(float(x2))), min(height, round(float(y2)))
            if right <= left or bottom <= top:
                continue
            found.append(
                {
                    "label": self.label(int(classes[i])),
                    "confidence": round(float(scores[i]), 6),
                    "box": {"x": left, "y": top, "width": right - left, "height": bottom - top},
                }
            )
        return found  # NMS kept them best first

    def segment(self, source: Any) -> tuple[np.ndarray, list[dict]]:
        """(class map as uint8 at the stored image's size, [{label, class_id, share}] by share)."""
        import numpy as np
        from PIL import Image

        outputs, geometry = self.forward(source)
        out = np.asarray(outputs[0])
        if out.ndim == 4 and out.shape[1] > 1:  # [1, classes, h, w] scores
            class_map = np.argmax(out[0], axis=0)
        elif out.ndim in (3, 4):  # [1, h, w] or [1, 1, h, w] class ids
            class_map = np.rint(out.reshape(out.shape[-2:])).astype(np.int64)
        else:
            raise InvalidRequest(
                f"a segmentation output must be 3-D or 4-D, got {list(out.shape)}", code="model_failed"
            )
        if class_map.min() < 0 or class_map.max() > 255:
            raise InvalidRequest("segmentation classes must be within 0..255 for a PNG mask", code="model_failed")
        assert self.input_spec.size is not None
        # The map may be smaller than the input (a stride-8 head): cut out the image's part of it.
        mh, mw = class_map.shape
        fx, fy = mw / self.input_spec.size[0], mh / self.input_spec.size[1]
        left, top, right, bottom = geometry.inner
        box = (
            math.floor(left * fx),
            math.floor(top * fy),
            max(math.floor(left * fx) + 1, math.ceil(right * fx)),
            max(math.floor(top * fy) + 1, math.ceil(bottom * fy)),
        )
        mask = (
            Image.fromarray(class_map.astype(np.uint8), "L")
            .crop(box)
            .resize(geometry.image_size, Image.Resampling.NEAREST)
        )
        pixels = np.asarray(mask)
        counts = np.bincount(pixels.ravel(), minlength=256)
        shares = [
            {"label": self.label(int(c)), "class_id": int(c), "share": round(float(counts[c] / pixels.size), 6)}
            for c in np.argsort(-counts, kind="stable")
            if counts[c]
        ]
        return pixels, shares

    def embed(self, source: Any, normalize: bool = True) -> np.ndarray:
        """The image's embedding (float32), L2-normalised when asked."""
        import numpy as np

        outputs, _ = self.forward(source)
        vector = np.asarray(outputs[0], dtype=np.float32).reshape(-1)
        if not np.isfinite(vector).all():
            raise InvalidRequest("the model's embedding holds NaN or infinite values", code="model_failed")
        if normalize:
            norm = float(np.linalg.norm(vector))
            if norm == 0:
                raise InvalidRequest("the embedding is all zeros: it cannot be normalised", code="model_failed")
            vector = vector / np.float32(norm)
        return vector
