"""A corpus of malformed and hostile files, and valid but unusual images, built by the tests.

`HOSTILE` must end as a 4xx at upload or a `failed` image with a reason; `VALID` must end
`ready`. Each entry is (name, filename announced by the client, a function returning bytes).
The bytes are generated (from sklearn's china.jpg photo or synthetic pixels), nothing is
downloaded.
"""

from __future__ import annotations

import functools
import io
import struct
import zlib


@functools.cache
def _photo():
    from PIL import Image
    from sklearn.datasets import load_sample_image

    return Image.fromarray(load_sample_image("china.jpg")).resize((320, 214))


def _save(img, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **options)
    return out.getvalue()


@functools.cache
def jpeg() -> bytes:
    return _save(_photo(), "JPEG", quality=85)


@functools.cache
def png() -> bytes:
    return _save(_photo(), "PNG")


@functools.cache
def gif() -> bytes:
    return _save(_photo().convert("P"), "GIF")


@functools.cache
def webp() -> bytes:
    return _save(_photo(), "WEBP", quality=80)


@functools.cache
def tiff() -> bytes:
    return _save(_photo(), "TIFF")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_of(width: int, height: int, rows: bytes, *, depth: int = 8, color: int = 0, extra: bytes = b"") -> bytes:
    header = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + extra + _chunk(b"IDAT", rows) + _chunk(b"IEND", b"")


def png_pixel_bomb() -> bytes:
    """A real, complete PNG of 20000×20000 black pixels: ~50 KB on disk, 400 MP decoded."""
    compressor = zlib.compressobj(9)
    row = b"\x00" + b"\x00" * 2500  # filter byte + 20000 1-bit pixels
    body = b"".join(compressor.compress(row) for _ in range(20000)) + compressor.flush()
    return _png_of(20000, 20000, body, depth=1)


def png_header_bomb() -> bytes:
    """A header that claims 100000×100000 pixels over a few bytes of data."""
    return _png_of(100_000, 100_000, zlib.compress(b"\x00" * 64))


def png_ztxt_bomb() -> bytes:
    """A small valid PNG carrying a zTXt chunk that inflates to 64 MB."""
    text = zlib.compress(b"A" * (64 * 1024 * 1024), 9)
    raw = b"".join(b"\x00" + b"\x80" * 16 for _ in range(16))
    return _png_of(16, 16, zlib.compress(raw), extra=_chunk(b"zTXt", b"comment\x00\x00" + text))


def gif_header_bomb() -> bytes:
    """A GIF whose logical screen and frame claim 65535×65535."""
    screen = b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\x80\x00\x00" + b"\x00" * 6
    frame = b"\x2c" + struct.pack("<HHHH", 0, 0, 65535, 65535) + b"\x00" + b"\x02\x02\x44\x01\x00" + b"\x3b"
    return screen + frame


def gif_1000_frames() -> bytes:
    from PIL import Image

    frames = []
    for i in range(1000):
        frame = Image.new("L", (16, 16), 0)
        frame.putpixel((i % 16, (i // 16) % 16), 255)  # each frame differs, so none is merged away
        frames.append(frame)
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=10)


def tiff_header_bomb() -> bytes:
    """A little-endian TIFF whose only IFD claims 1000000×1000000 pixels."""
    entries = [
        (256, 4, 1, 1_000_000),
        (257, 4, 1, 1_000_000),
        (258, 3, 1, 8),
        (259, 3, 1, 1),
        (262, 3, 1, 1),
        (273, 4, 1, 8),
        (277, 3, 1, 1),
        (278, 4, 1, 1_000_000),
        (279, 4, 1, 1),
    ]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\x00" * 4
    return b"II*\x00" + struct.pack("<I", 8) + ifd


def tiff_bad_ifd_offset() -> bytes:
    return b"II*\x00" + struct.pack("<I", 0x7FFFFFF0) + b"\x00" * 64


def bmp_header_bomb() -> bytes:
    """A BMP header claiming 50000×50000 at 24 bits, with no pixels."""
    info = struct.pack("<IiiHHIIiiII", 40, 50000, 50000, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40, 0, 0, 14 + 40) + info


def jpeg_zero_size() -> bytes:
    """A JPEG whose frame header says 0×0."""
    data = bytearray(jpeg())
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = b"\x00\x00\x00\x00"
    return bytes(data)


def jpeg_header_bomb() -> bytes:
    """A JPEG whose frame header says 65500×65500 (4.3 GP) over a 320×214 scan."""
    data = bytearray(jpeg())
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 65500, 65500)
    return bytes(data)


def jpeg_corrupt_tables() -> bytes:
    """A JPEG whose Huffman tables are overwritten with noise."""
    import random

    data = bytearray(jpeg())
    dht = data.find(b"\xff\xc4")
    noise = random.Random(7).randbytes(60)
    data[dht + 5 : dht + 65] = noise
    return bytes(data)


def jpeg_with_huge_exif() -> bytes:
    """A JPEG with a 60 KB EXIF block full of a huge ImageDescription and maker note."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x010E] = "A" * 30000  # ImageDescription
    exif[0x927C] = b"\x00" * 30000  # MakerNote
    return _save(_photo(), "JPEG", quality=85, exif=exif.tobytes())


def jpeg_with_garbage_exif() -> bytes:
    """A JPEG whose APP1 says Exif but holds random bytes (a broken IFD)."""
    import random

    payload = b"Exif\x00\x00" + b"MM\x00*\x00\x00\x00\x08" + random.Random(3).randbytes(2000)
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    data = jpeg()
    return data[:2] + app1 + data[2:]


def jpeg_with_bad_orientation() -> bytes:
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 65535
    return _save(_photo(), "JPEG", quality=85, exif=exif.tobytes())


def jpeg_then_html() -> bytes:
    """A JPEG/HTML polyglot: a valid JPEG followed by a script after its end marker."""
    return jpeg() + b"<html><script>alert(document.domain)</script></html>"


def gif_js_polyglot() -> bytes:
    """The classic GIF/JavaScript polyglot: 'GIF89a' begins a JS comment; no real image follows."""
    return b"GIF89a/*\x00\x00\x00\x00\x00*/=1;alert(document.domain);//" + b"\x00" * 32 + b"\x3b"


def jpeg_soi_then_html() -> bytes:
    return b"\xff\xd8\xff\xe0" + b"<html><body><script>alert(1)</script></body></html>"


def png_bad_crc() -> bytes:
    data = bytearray(png())
    data[29] ^= 0xFF  # the IHDR chunk's CRC
    return bytes(data)


def png_corrupt_idat() -> bytes:
    data = bytearray(png())
    idat = data.find(b"IDAT")
    for i in range(idat + 40, idat + 200):
        data[i] ^= 0x5A
    # Keep the chunk's CRC right, so only the compressed stream is wrong.
    length = struct.unpack(">I", data[idat - 4 : idat])[0]
    data[idat + 4 + length : idat + 8 + length] = struct.pack(">I", zlib.crc32(bytes(data[idat : idat + 4 + length])))
    return bytes(data)


def webp_bad_chunk() -> bytes:
    data = bytearray(webp())
    for i in range(30, 120):
        data[i] = 0xFF
    return bytes(data)


def wrong_magic() -> bytes:
    """A JPEG's bytes under a PNG signature."""
    return b"\x89PNG\r\n\x1a\n" + jpeg()[8:]


def elf_binary() -> bytes:
    return b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 200


def _gradient_16bit():
    import numpy as np
    from PIL import Image

    ramp = np.linspace(0, 65535, 256 * 128, dtype=np.uint16).reshape(128, 256)
    return Image.fromarray(ramp)


def _new(mode: str, size: tuple[int, int], color=0):
    from PIL import Image

    return Image.new(mode, size, color)


def extreme_aspect_wide() -> bytes:
    from PIL import Image

    return _save(Image.new("RGB", (60000, 1), (200, 10, 10)), "PNG")


def extreme_aspect_tall() -> bytes:
    from PIL import Image

    return _save(Image.new("L", (1, 60000), 128), "PNG")


HOSTILE = [
    ("zero bytes", "empty.jpg", lambda: b""),
    ("one byte", "one.jpg", lambda: b"\xff"),
    ("jpeg truncated at half", "half.jpg", lambda: jpeg()[: len(jpeg()) // 2]),
    ("jpeg truncated after headers", "head.jpg", lambda: jpeg()[:700]),
    ("jpeg start and end markers only", "empty-scan.jpg", lambda: b"\xff\xd8\xff\xd9"),
    ("jpeg 0x0 frame", "zero.jpg", jpeg_zero_size),
    ("jpeg header claiming 65500x65500", "huge.jpg", jpeg_header_bomb),
    ("jpeg with noise in its huffman tables", "noise.jpg", jpeg_corrupt_tables),
    ("jpeg SOI followed by html", "polyglot.jpg", jpeg_soi_then_html),
    ("png truncated", "half.png", lambda: png()[: len(png()) // 2]),
    ("png with a bad IHDR checksum", "crc.png", png_bad_crc),
    ("png with a corrupt deflate stream", "idat.png", png_corrupt_idat),
    ("png header claiming 100000x100000", "bomb-header.png", png_header_bomb),
    ("png pixel bomb 20000x20000", "bomb.png", png_pixel_bomb),
    ("png with a zTXt chunk inflating to 64 MB", "ztxt.png", png_ztxt_bomb),
    ("gif truncated", "half.gif", lambda: gif()[: len(gif()) // 3]),
    ("gif header claiming 65535x65535", "bomb.gif", gif_header_bomb),
    ("gif with 1000 frames", "frames.gif", gif_1000_frames),
    ("gif/javascript polyglot", "polyglot.gif", gif_js_polyglot),
    ("webp truncated", "half.webp", lambda: webp()[: len(webp()) // 2]),
    ("webp with a corrupt chunk", "bad.webp", webp_bad_chunk),
    ("riff header only", "riff.webp", lambda: b"RIFF\x10\x00\x00\x00WEBPVP8 "),
    ("tiff truncated", "half.tiff", lambda: tiff()[:300]),
    ("tiff with an IFD offset beyond the file", "ifd.tiff", tiff_bad_ifd_offset),
    ("tiff header claiming 1000000x1000000", "bomb.tiff", tiff_header_bomb),
    ("bmp header claiming 50000x50000", "bomb.bmp", bmp_header_bomb),
    ("png signature over jpeg data", "wrong-magic.png", wrong_magic),
    ("plain text named .jpg", "notes.jpg", lambda: b"just some text, not a picture\n" * 20),
    ("html named .jpg", "page.jpg", lambda: b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>"),
    ("svg named .jpg", "vector.jpg", lambda: b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'),
    (
        "svg with an xml prolog",
        "vector2.jpg",
        lambda: b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>',
    ),
    ("shell script named .jpg", "run.jpg", lambda: b"#!/bin/sh\nrm -rf /\n"),
    ("pdf named .jpg", "doc.jpg", lambda: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n" + jpeg()),
    ("zip/jpeg polyglot, zip first", "archive.jpg", lambda: b"PK\x03\x04" + b"\x00" * 26 + jpeg()),
    ("elf executable named .jpg", "a.jpg", elf_binary),
    ("photoshop file", "layers.jpg", lambda: b"8BPS\x00\x01" + b"\x00" * 100),
]

VALID = [
    ("cmyk jpeg", "cmyk.jpg", lambda: _save(_photo().convert("CMYK"), "JPEG", quality=85)),
    ("16-bit grayscale png", "deep.png", lambda: _save(_gradient_16bit(), "PNG")),
    ("grayscale with alpha png", "la.png", lambda: _save(_photo().convert("LA"), "PNG")),
    ("palette png with transparency", "p.png", lambda: _save(_photo().convert("P"), "PNG", transparency=0)),
    ("1x1 png", "dot.png", lambda: _save(_new("RGB", (1, 1), (255, 0, 0)), "PNG")),
    ("1x1 gif", "dot.gif", lambda: _save(_new("P", (1, 1)), "GIF")),
    (
        "small animated gif",
        "anim.gif",
        lambda: _save(
            _photo().convert("P"), "GIF", save_all=True, append_images=[_photo().rotate(10).convert("P")], duration=100
        ),
    ),
    ("lossless webp with alpha", "alpha.webp", lambda: _save(_photo().convert("RGBA"), "WEBP", lossless=True)),
    ("tiff", "photo.tiff", tiff),
    ("bmp", "photo.bmp", lambda: _save(_photo(), "BMP")),
    ("progressive jpeg", "progressive.jpg", lambda: _save(_photo(), "JPEG", quality=80, progressive=True)),
    ("extreme aspect 60000x1", "wide.png", extreme_aspect_wide),
    ("extreme aspect 1x60000", "tall.png", extreme_aspect_tall),
    ("jpeg with a 60 KB exif block", "exif.jpg", jpeg_with_huge_exif),
    ("jpeg with a garbage exif block", "garbage-exif.jpg", jpeg_with_garbage_exif),
    ("jpeg with orientation 65535", "orientation.jpg", jpeg_with_bad_orientation),
    ("jpeg followed by html (polyglot)", "trailing.jpg", jpeg_then_html),
]
