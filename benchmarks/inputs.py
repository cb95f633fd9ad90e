"""Inputs the benchmarks build from photos that packages ship: nothing is downloaded.

- `photo_jpeg(size)`: a shipped photo enlarged to `size` with Gaussian noise (σ 6 grey levels) so
  that it compresses like a camera photo (a 12 MP one is about 3 MB at quality 90).
- `face_composites()`: the recall set for face detection. Real faces pasted into enlarged
  scenes at known places and sizes: the astronaut's head (skimage) and the first faces of
  skimage's LFW subset (25×25 crops of Labeled Faces in the Wild, enlarged), each at a size
  between 4.5% and 25% of the picture's shorter side, plus the astronaut photo itself enlarged.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass

import numpy as np

SIZE_12MP = (4000, 3000)
SIZE_24MP = (6000, 4000)
NOISE_SIGMA = 6
QUALITY = 90
# Face sizes in the composites, as a share of the shorter side (the detector's floor is 4%).
FACE_SHARES = (0.045, 0.06, 0.08, 0.12, 0.18, 0.25)


@functools.cache
def shipped_photos() -> dict[str, np.ndarray]:
    """RGB photos from scikit-learn and scikit-image, by name."""
    from skimage import data as skdata
    from sklearn.datasets import load_sample_image

    return {
        "china": load_sample_image("china.jpg"),
        "flower": load_sample_image("flower.jpg"),
        "astronaut": skdata.astronaut(),
        "coffee": skdata.coffee(),
        "chelsea": skdata.chelsea(),
        "rocket": skdata.rocket(),
    }


def enlarged(rgb: np.ndarray, size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """`rgb` resized to size (width, height) with photo-like noise."""
    import cv2

    photo = cv2.resize(rgb, size, interpolation=cv2.INTER_CUBIC).astype(np.float32)
    photo += np.random.default_rng(seed).normal(0, NOISE_SIGMA, photo.shape).astype(np.float32)
    return np.clip(photo, 0, 255).astype(np.uint8)


def jpeg(rgb: np.ndarray, quality: int = QUALITY) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "JPEG", quality=quality)
    return out.getvalue()


def photo_jpeg(size: tuple[int, int], name: str = "china", seed: int = 0) -> bytes:
    return jpeg(enlarged(shipped_photos()[name], size, seed))


@dataclass
class FacePhoto:
    name: str
    data: bytes  # the JPEG
    size: tuple[int, int]  # width, height
    faces: list[tuple[int, int, int, int]]  # pasted faces: x, y, width, height (face region)


def face_crops() -> list[tuple[np.ndarray, tuple[float, float, float]]]:
    """RGB face crops, each with its face's square (x, y, side) as fractions of the crop's side:
    the astronaut's head and the first LFW faces (grey, as RGB; the crop is the face)."""
    from skimage import data as skdata

    astronaut = skdata.astronaut()[50:200, 160:310]  # her face is at (177, 67, 93×93) in the photo
    lfw = (skdata.lfw_subset()[:100] * 255).astype(np.uint8)  # the first 100 are faces
    return [(astronaut, (17 / 150, 17 / 150, 93 / 150))] + [
        (np.repeat(face[:, :, None], 3, axis=2), (0.0, 0.0, 1.0)) for face in lfw[:24]
    ]


def face_composites(size: tuple[int, int] = SIZE_12MP, count: int = 8) -> list[FacePhoto]:
    """`count` scenes with faces pasted at the FACE_SHARES sizes, plus the astronaut enlarged."""
    import cv2

    rng = np.random.default_rng(7)
    crops = face_crops()
    scenes = [name for name in shipped_photos() if name != "astronaut"]
    photos = []
    for i in range(count):
        scene = enlarged(shipped_photos()[scenes[i % len(scenes)]], size, seed=i)
        short = min(size)
        faces, tiles = [], []
        for j, share in enumerate(FACE_SHARES):
            crop, (rx, ry, rs) = crops[(i * len(FACE_SHARES) + j) % len(crops)]
            side = round(share * short / rs)
            tile = cv2.resize(crop, (side, side), interpolation=cv2.INTER_CUBIC)
            for _ in range(50):  # a free place, not overlapping the faces placed already
                x, y = int(rng.integers(0, size[0] - side)), int(rng.integers(0, size[1] - side))
                if all(x + side < fx or fx + fw < x or y + side < fy or fy + fh < y for fx, fy, fw, fh in tiles):
                    break
            tiles.append((x, y, side, side))
            scene[y : y + side, x : x + side] = tile
            faces.append((x + round(rx * side), y + round(ry * side), round(rs * side), round(rs * side)))
        photos.append(FacePhoto(f"composite-{i}", jpeg(scene), size, faces))
    astronaut = enlarged(shipped_photos()["astronaut"], (size[1], size[1]))
    f = size[1] / 512
    photos.append(
        FacePhoto(
            "astronaut",
            jpeg(astronaut),
            (size[1], size[1]),
            [(round(177 * f), round(67 * f), round(93 * f), round(93 * f))],
        )
    )
    return photos
