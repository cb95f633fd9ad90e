"""HEIF and AVIF files that say their colour space by an nclx box (H.273 code points) instead of
an ICC profile, as iPhones' HEICs and many AVIFs do: made by the real encoders (libheif's x265
through pillow-heif, libavif's avifenc), decoded to sRGB, compared by CIEDE2000 with littlecms'
conversion of the same decoded pixels through libvips' own Display P3 ICC profile."""

from __future__ import annotations

import io

import numpy as np
import pytest
from package_samples import vips_profile
from photo_samples import (
    coffee,
    decoded_as_is,
    delta_e,
    display_p3_reference,
    heif_sample,
    in_display_p3,
    nclx_avif,
    nclx_heic,
)
from PIL import Image, ImageCms

from chalicelib.imaging import imageio, nclx
from chalicelib.imaging.ingest import analyze_upload
from chalicelib.imaging.operation_runner import run_operation

LIMIT = 75_000_000
DISPLAY_P3 = (12, 13, 6)  # P3 primaries with D65 white, sRGB's curve, BT.601 matrix: an iPhone's HEIC
ENCODERS = {"heic": nclx_heic, "avif": nclx_avif}


@pytest.mark.parametrize("fmt", list(ENCODERS))
def test_the_nclx_box_is_read_from_the_header(fmt):
    data = ENCODERS[fmt](coffee(), DISPLAY_P3)
    assert nclx.read(data) == nclx.Nclx(12, 13, 6, True)
    assert nclx.read(data[:200]) is None  # a truncated header: no colour box, no error


def test_real_camera_heifs_nclx_boxes_read_as_libheif_reads_them():
    import pillow_heif

    # Canon's HIFs carry BT.709 / sRGB nclx boxes; an iPhone's HEIC an ICC profile, which wins.
    for name in ("heif_other/cat.hif", "heif_special/guitar_cw90.hif"):
        camera = heif_sample(name)
        reported = pillow_heif.open_heif(io.BytesIO(camera)).info["nclx_profile"]
        assert nclx.read(camera) == nclx.Nclx(
            reported["color_primaries"],
            reported["transfer_characteristics"],
            reported["matrix_coefficients"],
            bool(reported["full_range_flag"]),
        )
    assert nclx.read(heif_sample("heif_other/pug.heic")) is None


def test_the_built_display_p3_profile_has_the_colorants_of_libvips_p3_profile():
    built = ImageCms.ImageCmsProfile(io.BytesIO(nclx.icc_profile(nclx.Nclx(*DISPLAY_P3, True)))).profile
    reference = ImageCms.ImageCmsProfile(io.BytesIO(vips_profile("p3"))).profile
    for ours, theirs in (
        (built.red_colorant, reference.red_colorant),
        (built.green_colorant, reference.green_colorant),
        (built.blue_colorant, reference.blue_colorant),
    ):
        assert np.allclose(ours[0], theirs[0], atol=0.0015), (ours, theirs)
    assert built.profile_description == "Display P3 (nclx 12/13)"


@pytest.mark.parametrize("fmt", list(ENCODERS))
def test_a_display_p3_file_tagged_by_nclx_decodes_to_srgb(fmt):
    data = ENCODERS[fmt](in_display_p3(coffee()), DISPLAY_P3)
    reference = display_p3_reference(data)
    # Shown as sRGB without a conversion, these pixels are off by more than the targets.
    assert delta_e(imageio.to_array(decoded_as_is(data)), reference)[0] > 2
    decoded = imageio.decode(data, max_pixels=LIMIT)
    assert decoded.info["colour_profile"] == {"description": "Display P3 (nclx 12/13)", "converted_to_srgb": True}
    mean, p95 = delta_e(imageio.to_array(decoded), reference)
    assert mean <= 0.5 and p95 <= 1.0, (mean, p95)
    # Ingest: shrunk to the size needed, then converted; its thumbnail against the reference's.
    result = analyze_upload(data, max_pixels=LIMIT, max_frames=1, thumbnail_sizes=(256,))
    assert result.metadata["colour_profile"] == decoded.info["colour_profile"]
    [thumbnail] = result.thumbnails
    thumb = Image.open(io.BytesIO(thumbnail.data)).convert("RGB")
    mean, p95 = delta_e(imageio.to_array(thumb), display_p3_reference(data, thumb.size))
    assert mean <= 2 and p95 <= 5, (mean, p95)


@pytest.mark.parametrize(
    ("fmt", "cicp"),
    [("heic", (1, 13, 6)), ("heic", (1, 1, 1)), ("avif", (1, 13, 6)), ("avif", (2, 2, 6)), ("avif", (9, 16, 9))],
)
def test_srgb_and_bt709_nclx_files_skip_the_transform(fmt, cicp):
    """sRGB / BT.709 boxes (and unspecified ones) are shown as sRGB: no transform, no profile
    recorded. So is an HDR curve (PQ), which would need tone mapping, not a profile."""
    data = ENCODERS[fmt](coffee(), cicp)
    assert nclx.read(data) is not None and nclx.icc_profile(nclx.read(data)) is None
    decoded = imageio.decode(data, max_pixels=LIMIT)
    assert decoded.info["colour_profile"] is None
    assert np.array_equal(np.asarray(decoded.convert("RGB")), np.asarray(decoded_as_is(data)))


def test_pillows_own_avif_and_a_canon_hif_skip_the_transform():
    out = io.BytesIO()
    coffee().save(out, "AVIF", quality=90)  # Pillow writes sRGB's nclx box (1/13/6)
    for data in (out.getvalue(), heif_sample("heif_other/cat.hif")):
        assert nclx.read(data) is not None
        assert imageio.decode(data, max_pixels=LIMIT).info["colour_profile"] is None


def test_convert_keeps_the_nclx_colour_space_as_a_profile_on_request():
    data = nclx_heic(in_display_p3(coffee()), DISPLAY_P3)
    kept = Image.open(
        io.BytesIO(run_operation(data, "convert", {"format": "png", "keep_profile": True}, max_pixels=LIMIT).data)
    )
    assert kept.info["icc_profile"] == nclx.icc_profile(nclx.Nclx(*DISPLAY_P3, True))
    assert np.array_equal(np.asarray(kept.convert("RGB")), np.asarray(decoded_as_is(data)))
