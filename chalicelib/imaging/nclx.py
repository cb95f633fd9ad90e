"""HEIF and AVIF colour without an ICC profile: the `nclx` colour box (ITU-T H.273 code points).

iPhones' HEICs and many AVIFs say their colour space as three numbers instead of a profile:
colour primaries, transfer characteristics and matrix coefficients, e.g. 12/13/6 for Display P3
(P3 primaries with D65 white, sRGB's curve). libheif and libavif apply the matrix when they turn
YCbCr into RGB; the primaries and the curve are left to the viewer. Shown as sRGB, a P3 photo's
colours are off as much as a P3 JPEG whose profile is dropped.

`read` finds the primary image's nclx box in the file's header (no pixels decoded; Pillow's AVIF
plugin does not expose it, pi-heif's names it only for HEIF). `icc_profile` builds a matrix/TRC
ICC profile (v4, colorants adapted to D50 by Bradford, as ICC display profiles are) from the
H.273 chromaticities and curve, so that the one colour path (chalicelib/imaging/icc.py, littlecms)
converts it to sRGB, caches its transform, and `convert` can keep it. sRGB's own primaries with
sRGB's curve or BT.709's family of curves, which viewers show as sRGB, give no profile: those
files skip the transform, as untagged ones do. HDR curves (PQ, HLG) and code points outside the
table give no profile either: the pixels stay as decoded (tone mapping is not done here).
"""

from __future__ import annotations

import functools
import struct
from typing import NamedTuple


class Nclx(NamedTuple):
    primaries: int
    transfer: int
    matrix: int
    full_range: bool


# H.273 colour primaries: name, (x, y) of red, green, blue and white.
_D65 = (0.3127, 0.3290)
_ILLUMINANT_C = (0.310, 0.316)
_PRIMARIES: dict[int, tuple[str, tuple[tuple[float, float], ...]]] = {
    1: ("BT.709", ((0.640, 0.330), (0.300, 0.600), (0.150, 0.060), _D65)),
    4: ("BT.470 M", ((0.67, 0.33), (0.21, 0.71), (0.14, 0.08), _ILLUMINANT_C)),
    5: ("BT.601 625", ((0.640, 0.330), (0.290, 0.600), (0.150, 0.060), _D65)),
    6: ("BT.601 525", ((0.630, 0.340), (0.310, 0.595), (0.155, 0.070), _D65)),
    7: ("SMPTE 240M", ((0.630, 0.340), (0.310, 0.595), (0.155, 0.070), _D65)),
    8: ("generic film", ((0.681, 0.319), (0.243, 0.692), (0.145, 0.049), _ILLUMINANT_C)),
    9: ("BT.2020", ((0.708, 0.292), (0.170, 0.797), (0.131, 0.046), _D65)),
    11: ("DCI-P3", ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060), (0.314, 0.351))),
    12: ("Display P3", ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060), _D65)),
    22: ("EBU 3213", ((0.630, 0.340), (0.295, 0.605), (0.155, 0.077), _D65)),
}
# Unspecified primaries are taken as BT.709's (what libavif, libheif and browsers assume).
_UNSPECIFIED = 2
_BT709 = 1
# H.273 transfer characteristics → name, ICC parametric curve (function type, parameters): type 0
# is Y = X^g, type 3 is Y = (aX + b)^g for X ≥ d, else cX. The BT.709 family (1, 6, 14, 15, and the
# 11 and 12 extensions of it) is shown with sRGB's curve, as viewers show BT.709 files: that is
# what skipping the transform for sRGB-primaried ones means too.
_SRGB_CURVE = (3, (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045))
_SRGB_LIKE_TRANSFERS = frozenset({1, 2, 6, 11, 12, 13, 14, 15})
_TRANSFERS: dict[int, tuple[str, tuple[int, tuple[float, ...]]]] = {
    4: ("gamma 2.2", (0, (2.2,))),
    5: ("gamma 2.8", (0, (2.8,))),
    7: ("SMPTE 240M", (3, (1 / 0.45, 1 / 1.1115, 0.1115 / 1.1115, 1 / 4.0, 4 * 0.0228))),
    8: ("linear", (0, (1.0,))),
}
# The ICC profile connection space's white (D50) and Bradford's cone response matrix.
_D50_XYZ = (0.9642, 1.0, 0.8249)
_BRADFORD = ((0.8951, 0.2664, -0.1614), (-0.7502, 1.7135, 0.0367), (0.0389, -0.0685, 1.0296))


def read(data: bytes) -> Nclx | None:
    """The nclx box of a HEIF or AVIF file's primary image (of the first image when the primary
    one has none, as grid tiles carry it), from the header; None when there is none, when the
    primary image has an ICC profile instead (Pillow reads that one), or the header is broken."""
    try:
        meta = _child(data, 0, len(data), b"meta")
        if meta is None:
            return None
        start, end = meta[0] + 4, meta[1]  # a full box: version and flags first
        primary = None
        pitm = _child(data, start, end, b"pitm")
        if pitm is not None:
            version = data[pitm[0]]
            primary = int.from_bytes(data[pitm[0] + 4 : pitm[0] + (6 if version == 0 else 8)], "big")
        iprp = _child(data, start, end, b"iprp")
        if iprp is None:
            return None
        ipco = _child(data, iprp[0], iprp[1], b"ipco")
        if ipco is None:
            return None
        properties = list(_boxes(data, ipco[0], ipco[1]))
        colours = {index + 1: _colour(data, s, e) for index, (kind, s, e) in enumerate(properties) if kind == b"colr"}
        ipma = _child(data, iprp[0], iprp[1], b"ipma")
        if primary is not None and ipma is not None:
            for index in _associations(data, ipma[0], ipma[1]).get(primary, ()):
                colour = colours.get(index)
                if colour is not None:
                    return colour if isinstance(colour, Nclx) else None  # an ICC profile: Pillow's
        found = [colour for colour in colours.values() if isinstance(colour, Nclx)]
        return found[0] if found else None
    except (IndexError, ValueError, struct.error):
        return None


def _boxes(data: bytes, start: int, end: int):
    """(type, payload start, payload end) of the ISO-BMFF boxes between start and end."""
    position = start
    while position + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, position)
        header = 8
        if size == 1:
            size = struct.unpack_from(">Q", data, position + 8)[0]
            header = 16
        elif size == 0:
            size = end - position
        if size < header or position + size > end:
            raise ValueError("a box runs past its parent")
        yield kind, position + header, position + size
        position += size


def _child(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for found, payload_start, payload_end in _boxes(data, start, end):
        if found == kind:
            return payload_start, payload_end
    return None


def _colour(data: bytes, start: int, end: int) -> Nclx | str | None:
    """A colr box: its nclx numbers, "icc" for a profile, None for anything else."""
    kind = data[start : start + 4]
    if kind == b"nclx" and end - start >= 11:
        primaries, transfer, matrix = struct.unpack_from(">HHH", data, start + 4)
        return Nclx(primaries, transfer, matrix, bool(data[start + 10] & 0x80))
    return "icc" if kind in (b"prof", b"rICC") else None


def _associations(data: bytes, start: int, end: int) -> dict[int, list[int]]:
    """ipma: item id → the 1-based indices of its properties in ipco."""
    version, flags = data[start], int.from_bytes(data[start + 1 : start + 4], "big")
    position = start + 4
    (count,) = struct.unpack_from(">I", data, position)
    position += 4
    out: dict[int, list[int]] = {}
    for _ in range(count):
        if version < 1:
            (item,) = struct.unpack_from(">H", data, position)
            position += 2
        else:
            (item,) = struct.unpack_from(">I", data, position)
            position += 4
        associations = data[position]
        position += 1
        indices = []
        for _ in range(associations):
            if flags & 1:
                indices.append(struct.unpack_from(">H", data, position)[0] & 0x7FFF)
                position += 2
            else:
                indices.append(data[position] & 0x7F)
                position += 1
        out[item] = indices
    if position > end:
        raise ValueError("ipma runs past its box")
    return out


def is_srgb(nclx: Nclx) -> bool:
    """True when viewers show these pixels as sRGB: no transform needed."""
    return nclx.primaries in (_BT709, _UNSPECIFIED) and nclx.transfer in _SRGB_LIKE_TRANSFERS


def icc_profile(nclx: Nclx | None) -> bytes | None:
    """An ICC profile describing pixels tagged `nclx`; None when they are sRGB already or the
    code points are ones we do not convert (HDR curves, reserved values)."""
    if nclx is None or is_srgb(nclx):
        return None
    return _profile(nclx.primaries if nclx.primaries != _UNSPECIFIED else _BT709, nclx.transfer)


@functools.cache
def _profile(primaries: int, transfer: int) -> bytes | None:
    if primaries not in _PRIMARIES or (transfer not in _TRANSFERS and transfer not in _SRGB_LIKE_TRANSFERS):
        return None
    primaries_name, chromaticities = _PRIMARIES[primaries]
    transfer_name, curve = _TRANSFERS.get(transfer, ("sRGB curve", _SRGB_CURVE))
    if primaries == 12 and transfer in _SRGB_LIKE_TRANSFERS:
        description = f"Display P3 (nclx {primaries}/{transfer})"
    else:
        description = f"{primaries_name}, {transfer_name} (nclx {primaries}/{transfer})"
    return _matrix_trc_profile(description, _d50_colorants(chromaticities), curve)


def _xyz(x: float, y: float) -> tuple[float, float, float]:
    return x / y, 1.0, (1 - x - y) / y


def _d50_colorants(chromaticities: tuple[tuple[float, float], ...]) -> list[list[float]]:
    """The XYZ of full red, green and blue (columns) with the white at Y = 1, adapted to D50."""
    import numpy as np

    *rgb, white = chromaticities
    primaries = np.array([_xyz(*xy) for xy in rgb]).T  # columns: X, Y, Z of R, G, B at Y = 1
    scale = np.linalg.solve(primaries, np.array(_xyz(*white)))
    to_xyz = primaries * scale  # RGB (linear) → XYZ under the source white
    bradford = np.array(_BRADFORD)
    source_cone, d50_cone = bradford @ np.array(_xyz(*white)), bradford @ np.array(_D50_XYZ)
    adapt = np.linalg.inv(bradford) @ np.diag(d50_cone / source_cone) @ bradford
    return (adapt @ to_xyz).T.tolist()  # rows: the XYZ of red, green, blue


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _matrix_trc_profile(description: str, colorants: list[list[float]], curve: tuple[int, tuple[float, ...]]) -> bytes:
    """An ICC v4 RGB display profile: description, D50 white, colorants, one parametric curve."""
    text = description.encode("utf-16-be")
    desc = b"mluc" + bytes(4) + struct.pack(">II", 1, 12) + b"enUS" + struct.pack(">II", len(text), 28) + text
    copyright_text = "No copyright, use freely".encode("utf-16-be")
    cprt = b"mluc" + bytes(4) + struct.pack(">II", 1, 12) + b"enUS" + struct.pack(">II", len(copyright_text), 28)
    cprt += copyright_text
    function, parameters = curve
    trc = b"para" + bytes(4) + struct.pack(">HH", function, 0) + b"".join(_s15(p) for p in parameters)

    def xyz(values) -> bytes:
        return b"XYZ " + bytes(4) + b"".join(_s15(v) for v in values)

    tags = [
        (b"desc", desc),
        (b"cprt", cprt),
        (b"wtpt", xyz(_D50_XYZ)),
        (b"rXYZ", xyz(colorants[0])),
        (b"gXYZ", xyz(colorants[1])),
        (b"bXYZ", xyz(colorants[2])),
        (b"rTRC", trc),
        (b"gTRC", trc),  # one curve for all three: the tags share its bytes
        (b"bTRC", trc),
    ]
    table_end = 128 + 4 + 12 * len(tags)
    entries, body, offsets = [], b"", {}
    for signature, payload in tags:
        if payload not in offsets:
            offsets[payload] = table_end + len(body)
            body += payload + bytes(-len(payload) % 4)
        entries.append(struct.pack(">4sII", signature, offsets[payload], len(payload)))
    size = table_end + len(body)
    header = struct.pack(">I4sI4s4s4s", size, b"\0\0\0\0", 0x04300000, b"mntr", b"RGB ", b"XYZ ")
    header += struct.pack(">6H", 2026, 1, 1, 0, 0, 0) + b"acsp" + bytes(4) + struct.pack(">I", 0)
    header += bytes(8) + bytes(8) + struct.pack(">I", 0)  # manufacturer, model, attributes, intent
    header += b"".join(_s15(v) for v in _D50_XYZ) + bytes(4) + bytes(16) + bytes(28)
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + b"".join(entries) + body
