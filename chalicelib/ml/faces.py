"""Face detection with the Haar cascades that opencv-python-headless 4.x ships.

Detection runs on a grayscale copy whose shorter side is `detect_side` pixels (576: 768×576 for
a 4:3 photo), so the search costs the same whatever the photo's resolution. The cascade's
window is 24 px, so faces smaller than ~4% of the picture's shorter side (24 of 576) are given
up. What a search costs is the number of windows it tries: the area of the copy over the
smallest face, times a factor set by the step between scales (1/(1 − 1/step²): 5.8 at 1.1, 3.3
at 1.2). benchmarks/bench_suite.py measures recall against a full-resolution search on photos
with faces pasted at known sizes (docs/benchmarks/report.md): 576 px with a 1.1 step keeps the
faces down to 5% of the shorter side; 480 px or a 1.15 step start losing faces of 5–7%.

Boxes come back in the input image's pixels.
"""
from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

CASCADE = "haarcascade_frontalface_default.xml"
# Shorter side of the copy searched; the cascade's 24-px window makes the smallest face 24/576.
DEFAULT_DETECT_SIDE = 576
WINDOW = 24
# Size ratio between successive scales searched: 1.1 tries 1.8× the windows of 1.2, and finds
# the faces near the smallest size that 1.2 misses.
SCALE_FACTOR = 1.1
# Detections that must overlap to keep a face: 5 (OpenCV's usual) loses small faces, which
# collect fewer; 3 keeps them with no more false faces on the benchmark's photos.
MIN_NEIGHBORS = 3


@functools.cache
def _cascade():
    import cv2

    classifier = cv2.CascadeClassifier(cv2.data.haarcascades + CASCADE)
    if classifier.empty():
        raise RuntimeError(f"OpenCV could not load {CASCADE}: is opencv-python-headless 4.x installed?")
    return classifier


def _confidence(level_weight: float) -> float:
    # The cascade's last-stage weight is an unbounded margin (≈1 at the threshold, 5+ for
    # clear frontal faces); a logistic maps it onto 0..1 so results can be ranked and filtered.
    return round(1.0 / (1.0 + math.exp(-(level_weight - 1.0))), 4)


def detect_faces(image: np.ndarray, *, detect_side: int = DEFAULT_DETECT_SIDE,
                 min_neighbors: int = MIN_NEIGHBORS) -> list[dict]:
    """Faces in a BGR, BGRA or gray array: [{box: {x, y, width, height}, confidence}] best first.

    `detect_side` is the shorter side of the copy searched: larger finds smaller faces, slower.
    """
    import cv2

    scale = min(1.0, detect_side / min(image.shape[:2]))
    if scale < 1.0:  # shrink first: the grey conversion then touches fewer pixels
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
    gray = cv2.equalizeHist(gray)
    boxes, _, weights = _cascade().detectMultiScale3(
        gray, scaleFactor=SCALE_FACTOR, minNeighbors=min_neighbors, minSize=(WINDOW, WINDOW), outputRejectLevels=True
    )
    faces = []
    for (x, y, w, h), weight in zip(boxes, weights):
        faces.append({
            "box": {"x": round(x / scale), "y": round(y / scale), "width": round(w / scale), "height": round(h / scale)},
            "confidence": _confidence(float(weight)),
        })
    return sorted(faces, key=lambda f: -f["confidence"])
