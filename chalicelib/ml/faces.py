"""Face detection with the Haar cascades that opencv-python-headless 4.x ships.

Detection runs on a grayscale copy scaled so its longest side is `detect_side` pixels: faces
smaller than ~2.5% of the picture's longest side are given up for a search that costs the
same whatever the photo's resolution. Boxes come back in the input image's pixels.
"""
from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

CASCADE = "haarcascade_frontalface_default.xml"
DEFAULT_DETECT_SIDE = 1024
MIN_NEIGHBORS = 5


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
    """Faces in a BGR, BGRA or gray array: [{box: {x, y, width, height}, confidence}] best first."""
    import cv2

    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
    scale = min(1.0, detect_side / max(gray.shape[:2]))
    if scale < 1.0:
        size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))  # never 0 px
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    gray = cv2.equalizeHist(gray)
    min_size = max(20, round(min(gray.shape[:2]) * 0.04))
    boxes, _, weights = _cascade().detectMultiScale3(
        gray, scaleFactor=1.1, minNeighbors=min_neighbors, minSize=(min_size, min_size), outputRejectLevels=True
    )
    faces = []
    for (x, y, w, h), weight in zip(boxes, weights):
        faces.append({
            "box": {"x": round(x / scale), "y": round(y / scale), "width": round(w / scale), "height": round(h / scale)},
            "confidence": _confidence(float(weight)),
        })
    return sorted(faces, key=lambda f: -f["confidence"])
