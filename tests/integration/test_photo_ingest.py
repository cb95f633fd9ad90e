"""Phone and camera photos through the real stack (moto's S3 → SQS over HTTP, PostgreSQL, the
ingest function): each ends `ready` with its upright size and thumbnails whose colours match
littlecms' / libvips' sRGB rendering of the file, CIEDE2000 ≤ 2 mean, ≤ 5 at the 95th percentile
(for a HEIC or AVIF tagged by an nclx box only, the reference is littlecms from libvips' Display
P3 profile)."""

import io

import numpy as np
import pytest
from package_samples import adobe_rgb_profile, vips_profile
from photo_samples import (
    astronaut,
    coffee,
    delta_e,
    display_p3_reference,
    heif_sample,
    in_display_p3,
    littlecms_thumbnail,
    nclx_avif,
    nclx_heic,
    profiled_jpeg,
    vips_thumbnail,
)
from PIL import Image
from test_ingest import deliver, image_by_key, local_user  # noqa: F401  (fixtures)

from chalicelib import storage
from chalicelib.imaging import imageio


def _rotated_avif() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90° clockwise
    out = io.BytesIO()
    astronaut().crop((0, 0, 300, 512)).save(out, "AVIF", quality=90, exif=exif.tobytes())
    return out.getvalue()


def _rotated_avif_reference(data: bytes, size: tuple[int, int]) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as opened:
        from PIL import ImageOps

        return np.asarray(ImageOps.exif_transpose(opened).convert("RGB").resize(size, Image.Resampling.LANCZOS))


CASES = {
    # name: (file, upload name, (width, height) upright, profile recorded, reference(data, size))
    "iphone-heic": (
        lambda: heif_sample("heif_other/pug.heic"),
        "IMG_0001.HEIC",
        (4032, 3024),
        "Display P3",
        littlecms_thumbnail,
    ),
    "display-p3-jpeg": (
        lambda: profiled_jpeg(vips_profile("p3"), size=(1600, 1200)),
        "p3.jpg",
        (1600, 1200),
        "sP3C",
        lambda data, size: vips_thumbnail(data, max(size)),
    ),
    "adobe-rgb-jpeg": (
        lambda: profiled_jpeg(adobe_rgb_profile(), size=(1600, 1200)),
        "adobe.jpg",
        (1600, 1200),
        "Compatible with Adobe RGB (1998)",
        lambda data, size: vips_thumbnail(data, max(size)),
    ),
    "cmyk-jpeg": (
        lambda: profiled_jpeg(vips_profile("cmyk"), mode="CMYK", size=(1600, 1200)),
        "print.jpg",
        (1600, 1200),
        "Chemical proof",
        lambda data, size: vips_thumbnail(data, max(size)),
    ),
    "rotated-avif": (_rotated_avif, "photo.avif", (512, 300), None, _rotated_avif_reference),
    # Display P3 said by an nclx box, no ICC profile (iPhones' HEICs, many AVIFs): real encoders.
    "nclx-p3-heic": (
        lambda: nclx_heic(in_display_p3(coffee()), (12, 13, 6)),
        "IMG_0002.HEIC",
        (600, 400),
        "Display P3 (nclx 12/13)",
        display_p3_reference,
    ),
    "nclx-p3-avif": (
        lambda: nclx_avif(in_display_p3(coffee()), (12, 13, 6)),
        "p3.avif",
        (600, 400),
        "Display P3 (nclx 12/13)",
        display_p3_reference,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_photos_end_ready_upright_and_in_srgb(deliver, local_user, case):
    make, name, (width, height), profile, reference = CASES[case]
    data = make()
    key, payload = deliver(data, user_id=local_user, name=name)
    assert payload == {"batchItemFailures": []}
    image = image_by_key(key)
    assert image.status == "ready", image.error
    assert (image.width, image.height) == (width, height)
    recorded = image.metadata_.get("colour_profile")
    if profile is None:
        assert recorded is None
    else:
        assert recorded == {"description": profile, "converted_to_srgb": True}
    [small] = [t for t in image.thumbnails if t["size"] == 256]
    thumb = Image.open(io.BytesIO(storage.get(small["key"])))
    assert thumb.format == "JPEG" and "icc_profile" not in thumb.info  # sRGB, untagged
    # Upright: the thumbnail has the image's aspect.
    assert abs(thumb.width / thumb.height - width / height) < 0.02
    mean, p95 = delta_e(imageio.to_array(thumb.convert("RGB")), reference(data, thumb.size))
    assert mean <= 2 and p95 <= 5, (case, mean, p95)
