"""Images the tests build from photos that packages ship, and hostile ones."""

from __future__ import annotations

import io

# Where the astronaut's face is in skimage.data.astronaut() (512×512): brow to chin, ear to ear.
ASTRONAUT_FACE = {"x": 177, "y": 67, "width": 93, "height": 93}


def box_iou(a: dict, b: dict) -> float:
    """Intersection over union of two {x, y, width, height} boxes."""
    ix = max(0, min(a["x"] + a["width"], b["x"] + b["width"]) - max(a["x"], b["x"]))
    iy = max(0, min(a["y"] + a["height"], b["y"] + b["height"]) - max(a["y"], b["y"]))
    inter = ix * iy
    return inter / (a["width"] * a["height"] + b["width"] * b["height"] - inter)


def jpeg_bytes(size: tuple[int, int] | None = None, *, quality: int = 90, exif=None) -> bytes:
    from PIL import Image
    from sklearn.datasets import load_sample_image

    img = Image.fromarray(load_sample_image("china.jpg"))
    if size:
        img = img.resize(size)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality, **({"exif": exif} if exif is not None else {}))
    return out.getvalue()


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width×height pixels (a decompression bomb's header)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


BOUNDARY = "pixelakeboundary"


def multipart(field: str, filename: str, data: bytes, content_type: str = "image/jpeg"):
    """A multipart/form-data body with one file part, and its Content-Type header."""
    body = (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    return body, {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def face_composite(
    size: tuple[int, int] = (2400, 1800), face_share: float = 0.07, at: tuple[float, float] = (0.7, 0.25)
) -> tuple[bytes, tuple[int, int, int]]:
    """A JPEG of skimage's coffee scene enlarged to `size`, with the astronaut's face pasted so
    that it is `face_share` of the shorter side, its top-left at `at` (fractions of width, height).
    Returns the JPEG and where the face is: (x, y, side) in pixels."""
    from PIL import Image
    from skimage import data as skdata

    scene = Image.fromarray(skdata.coffee()).resize(size, Image.Resampling.BICUBIC)
    head = Image.fromarray(skdata.astronaut()).crop((160, 50, 310, 200))  # face at (17, 17), 93×93
    side = round(face_share * min(size) * 150 / 93)
    x, y = round(at[0] * size[0]), round(at[1] * size[1])
    scene.paste(head.resize((side, side), Image.Resampling.BICUBIC), (x, y))
    out = io.BytesIO()
    scene.save(out, "JPEG", quality=90)
    face = round(side * 93 / 150)
    return out.getvalue(), (x + round(side * 17 / 150), y + round(side * 17 / 150), face)
