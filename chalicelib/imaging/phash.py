"""64-bit perceptual hash (DCT of a 32×32 grayscale, the sign of the 8×8 low frequencies).

numpy + Pillow only, so it runs in either Lambda layer and on Dask workers. The hash is
stored as a signed BIGINT; near-duplicates are within a small Hamming distance.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

HASH_SIDE = 8
SAMPLE_SIDE = 32


@functools.cache
def _dct_matrix(n: int) -> np.ndarray:
    import numpy as np

    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


def phash(img: Image.Image) -> int:
    """The perceptual hash of a Pillow image as a signed 64-bit integer."""
    import numpy as np
    from PIL import Image

    small = img.convert("L").resize((SAMPLE_SIDE, SAMPLE_SIDE), Image.Resampling.BOX)
    pixels = np.asarray(small, dtype=np.float64)
    d = _dct_matrix(SAMPLE_SIDE)
    low = (d @ pixels @ d.T)[:HASH_SIDE, :HASH_SIDE].ravel()
    # The DC term (overall brightness) does not vote. The median by selection, as np.median
    # computes it, without np.median's first call importing numpy.ma (its NaN check: ~6 ms of
    # the ingest function's cold start); a DCT of pixels holds no NaN.
    ac = low[1:]
    middle = np.partition(ac, [(len(ac) - 1) // 2, len(ac) // 2])
    bits = low > (middle[(len(ac) - 1) // 2] + middle[len(ac) // 2]) / 2
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return value - (1 << 64) if value >= (1 << 63) else value


def hamming(a: int, b: int) -> int:
    return ((a ^ b) & 0xFFFFFFFFFFFFFFFF).bit_count()
