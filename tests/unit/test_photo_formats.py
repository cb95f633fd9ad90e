"""Photos as phones and cameras make them: HEIC/HEIF and AVIF decode, colour profiles, animations.

Real files first: pillow-heif's test images (an iPhone 13 Pro HEIC in Display P3, an iPhone XS
one, a Samsung S25 one with auxiliary images, a Sony HIF rotated by its HEIF properties, a
200 MP pixel bomb), ICC profiles from libvips and Debian's colord-data; thumbnails are compared
with libvips' colour-managed thumbnails (littlecms) by CIEDE2000.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from package_samples import adobe_rgb_profile, grey_l_star_profile, vips_profile
from photo_samples import (
    astronaut,
    delta_e,
    heic_bytes,
    heif_sample,
    littlecms_thumbnail,
    profiled_jpeg,
    vips_thumbnail,
)
from PIL import Image, ImageCms

from chalicelib.imaging import icc, imageio
from chalicelib.imaging.imageio import ImageRejected
from chalicelib.imaging.ingest import analyze_upload, make_thumbnails
from chalicelib.imaging.operation_runner import run_operation

LIMIT = 75_000_000


# ---------------------------------------------------------------- sniffing and probing


def test_real_heic_and_generated_avif_are_recognised_by_their_bytes():
    assert imageio.sniff_content_type(heif_sample("heif_other/pug.heic")[: imageio.SNIFF_BYTES]) == "image/heic"
    avif = io.BytesIO()
    astronaut().save(avif, "AVIF", quality=60)
    assert imageio.sniff_content_type(avif.getvalue()[: imageio.SNIFF_BYTES]) == "image/avif"
    # An MP4 video is ISO-BMFF too, but no image brand: not an image.
    assert imageio.sniff_content_type(b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom") is None
    assert imageio.probe(avif.getvalue(), max_pixels=LIMIT).content_type == "image/avif"


def test_a_200_megapixel_heic_is_refused_from_its_header():
    data = heif_sample("heif_special/200MP.heic")
    with pytest.raises(ImageRejected, match="12240×16320 pixels, more than the limit"):
        imageio.decode(data, max_pixels=LIMIT)


@pytest.mark.parametrize("name", ["heif_corrupted/corrupted.heic", "heif_corrupted/empty.heic"])
def test_broken_heics_are_refused_with_a_reason(name):
    with pytest.raises(ImageRejected):
        analyze_upload(heif_sample(name), max_pixels=LIMIT, max_frames=200, thumbnail_sizes=(256,))


# ---------------------------------------------------------------- real phone and camera HEICs


def test_an_iphone_heic_is_ingested_in_srgb_with_its_camera_facts():
    data = heif_sample("heif_other/pug.heic")
    outcome = analyze_upload(data, max_pixels=LIMIT, max_frames=200, thumbnail_sizes=(256, 1024))
    assert (outcome.format, outcome.content_type, outcome.width, outcome.height) == ("heif", "image/heic", 4032, 3024)
    assert outcome.metadata["colour_profile"] == {"description": "Display P3", "converted_to_srgb": True}
    assert outcome.metadata["exif"]["model"] == "iPhone 13 Pro"
    assert [(t.width, t.height) for t in outcome.thumbnails] == [(1024, 768), (256, 192)]
    thumb = imageio.to_array(Image.open(io.BytesIO(outcome.thumbnails[1].data)).convert("RGB"))
    mean, p95 = delta_e(thumb, littlecms_thumbnail(data, (256, 192)))
    assert mean <= 2 and p95 <= 5, (mean, p95)


def test_heif_rotation_property_is_applied_once():
    # Sony's HIF stores the picture landscape with an `irot` of 90° clockwise.
    data = heif_sample("heif_special/guitar_cw90.hif")
    info = imageio.probe(data, max_pixels=LIMIT)
    outcome = analyze_upload(data, max_pixels=LIMIT, max_frames=200, thumbnail_sizes=(256,))
    assert (outcome.width, outcome.height) == (info.width, info.height) == (4672, 7008)
    thumb = imageio.to_array(Image.open(io.BytesIO(outcome.thumbnails[0].data)).convert("RGB"))
    assert thumb.shape[0] == 256 and abs(thumb.shape[1] - 171) <= 1
    reference = littlecms_thumbnail(data, (thumb.shape[1], 256))  # pillow-heif's upright picture
    assert delta_e(thumb, reference)[0] <= 2


def test_a_heic_with_auxiliary_images_decodes_only_the_primary():
    data = heif_sample("heif_special/aux_YCbCr.heic")  # a Galaxy S25 Ultra's, with auxiliary images
    outcome = analyze_upload(data, max_pixels=LIMIT, max_frames=200, thumbnail_sizes=(256,))
    assert (outcome.width, outcome.height) == (4000, 1848)
    assert outcome.metadata["frames"] == 1
    # Its profile is P3 primaries with sRGB's curve: not sRGB, so converted.
    assert outcome.metadata["colour_profile"]["converted_to_srgb"] is True


# ---------------------------------------------------------------- generated: grid, 10-bit, rotation


def test_grid_tiled_ten_bit_and_exif_rotated_heics():
    import pillow_heif

    picture = astronaut()
    big = Image.fromarray(np.tile(np.asarray(picture), (3, 3, 1)))  # 1536², over one 512 px tile
    pillow_heif.options.GRID_TILE_SIZE = 512
    try:
        grid = heic_bytes(big)
    finally:
        pillow_heif.options.GRID_TILE_SIZE = 0
    assert b"grid" in grid[:4096]
    decoded = imageio.decode(grid, max_pixels=LIMIT)
    assert decoded.size == (1536, 1536)
    assert delta_e(imageio.to_array(decoded), np.asarray(big))[0] < 2

    ten_bit = pillow_heif.from_bytes(
        mode="RGB;16", size=picture.size, data=(np.asarray(picture).astype(np.uint16) * 257).tobytes()
    )
    out = io.BytesIO()
    ten_bit.save(out, quality=92)
    with Image.open(io.BytesIO(out.getvalue())) as opened:
        assert opened.info["bit_depth"] == 10
    decoded = imageio.decode(out.getvalue(), max_pixels=LIMIT)
    assert decoded.mode == "RGB" and decoded.size == picture.size
    assert delta_e(imageio.to_array(decoded), np.asarray(picture))[0] < 2

    portrait = picture.crop((0, 0, 300, 512))
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90° clockwise
    rotated = heic_bytes(portrait, exif=exif.tobytes())
    pixels = imageio.decode_array(rotated, max_pixels=LIMIT, min_longest_side=256).pixels
    expected = np.asarray(portrait.transpose(Image.Transpose.ROTATE_270).resize((256, 150)))
    assert pixels.shape == (150, 256, 3)
    assert delta_e(pixels, expected)[0] < 3


def test_avif_decodes_rotated_and_is_an_output_of_convert():
    portrait = astronaut().crop((0, 0, 300, 512))
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    portrait.save(out, "AVIF", quality=90, exif=exif.tobytes())
    outcome = analyze_upload(out.getvalue(), max_pixels=LIMIT, max_frames=200, thumbnail_sizes=(256,))
    assert (outcome.format, outcome.width, outcome.height) == ("avif", 512, 300)
    thumb = imageio.to_array(Image.open(io.BytesIO(outcome.thumbnails[0].data)).convert("RGB"))
    assert delta_e(thumb, np.asarray(portrait.transpose(Image.Transpose.ROTATE_270).resize((256, 150))))[0] < 3

    png = io.BytesIO()
    portrait.save(png, "PNG")
    converted = run_operation(png.getvalue(), "convert", {"format": "avif", "quality": 70}, max_pixels=LIMIT)
    assert (converted.format, converted.content_type) == ("avif", "image/avif")
    with Image.open(io.BytesIO(converted.data)) as opened:
        assert opened.format == "AVIF" and opened.size == (300, 512)
    piped = run_operation(
        png.getvalue(),
        "pipeline",
        {"steps": [{"operation": "flip"}, {"operation": "convert", "params": {"format": "avif"}}]},
        max_pixels=LIMIT,
    )
    assert piped.format == "avif"
    # A HEIC's operations come out as JPEG unless asked otherwise (HEIC is not written).
    assert run_operation(heic_bytes(portrait), "flip", {}, max_pixels=LIMIT).format == "jpeg"


# ---------------------------------------------------------------- colour management


def _profiled_cases():
    return {
        "display-p3": (vips_profile("p3"), "RGB"),
        "adobe-rgb": (adobe_rgb_profile(), "RGB"),
        "cmyk": (vips_profile("cmyk"), "CMYK"),
    }


@pytest.mark.parametrize("case", ["display-p3", "adobe-rgb", "cmyk"])
def test_profiled_jpegs_give_thumbnails_in_srgb(case):
    profile, mode = _profiled_cases()[case]
    data = profiled_jpeg(profile, mode=mode, size=(1600, 1600))  # big enough for the reduced decode
    thumb = make_thumbnails(data, (256,), max_pixels=LIMIT)[0]
    pixels = imageio.to_array(Image.open(io.BytesIO(thumb.data)).convert("RGB"))
    reference = vips_thumbnail(data, 256)
    mean, p95 = delta_e(pixels, reference)
    assert mean <= 2 and p95 <= 5, (case, mean, p95)
    # The fault this fixes: the same numbers shown as if they were sRGB are visibly off.
    with Image.open(io.BytesIO(data)) as raw:
        unmanaged = np.asarray(raw.convert("RGB").resize(pixels.shape[1::-1], Image.Resampling.LANCZOS))
    assert delta_e(unmanaged[:, :, ::-1], reference)[0] > mean + 0.2


def test_the_jpeg_fast_path_reads_the_profile_from_app2_segments():
    profile = vips_profile("cmyk")  # ~1 MB: split over 15 APP2 segments
    data = profiled_jpeg(vips_profile("p3"), size=(1600, 1600))
    assert icc.jpeg_icc_profile(data) == vips_profile("p3")
    big = io.BytesIO()
    astronaut().save(big, "JPEG", icc_profile=profile)
    assert icc.jpeg_icc_profile(big.getvalue()) == profile
    assert icc.jpeg_icc_profile(imageio.encode(astronaut(), "JPEG")) is None


def test_srgb_tagged_and_untagged_images_skip_the_transform():
    untagged = imageio.encode(astronaut(), "JPEG", 95)
    tagged = io.BytesIO()
    astronaut().save(tagged, "JPEG", quality=95, icc_profile=icc.srgb_profile_bytes())
    for data in (untagged, tagged.getvalue()):
        decoded = imageio.decode_array(data, max_pixels=LIMIT)
        assert decoded.colour_profile in (None, {"description": "sRGB built-in", "converted_to_srgb": False})
    assert np.array_equal(
        np.asarray(imageio.decode(tagged.getvalue(), max_pixels=LIMIT)),
        np.asarray(Image.open(io.BytesIO(tagged.getvalue())).convert("RGB")),
    )


@pytest.mark.parametrize("size", [(512, 512), (1600, 1600)])  # Pillow's decode, and the simplejpeg fast path
def test_a_grey_profile_keeps_a_grey_picture_in_srgb_tones(size):
    profile = grey_l_star_profile()
    grey = astronaut().convert("L").resize(size)
    out = io.BytesIO()
    grey.save(out, "JPEG", quality=95, icc_profile=profile)
    data = out.getvalue()
    pixels = imageio.decode_array(data, max_pixels=LIMIT, min_longest_side=256)
    assert pixels.pixels.ndim == 2  # still one channel
    assert pixels.colour_profile == {"description": "Gray CIE*L", "converted_to_srgb": True}
    # littlecms' own grey → sRGB of the decoded file, shrunk alike
    transform = ImageCms.buildTransform(
        ImageCms.ImageCmsProfile(io.BytesIO(profile)),
        ImageCms.createProfile("sRGB"),
        "L",
        "RGB",
        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
    )
    decoded = Image.open(io.BytesIO(data)).convert("L")
    reference = np.asarray(ImageCms.applyTransform(decoded, transform).resize(pixels.pixels.shape[::-1]))
    ours = np.dstack([pixels.pixels] * 3)
    managed = delta_e(ours, reference)[0]
    assert managed <= 1
    # and the L* curve is not sRGB's: unconverted, the mid-tones are off
    untouched = np.dstack([np.asarray(decoded.resize(pixels.pixels.shape[::-1]))] * 3)
    assert delta_e(untouched, reference)[0] > managed + 1


def test_convert_keeps_the_original_profile_on_request():
    data = profiled_jpeg(vips_profile("p3"))
    kept = run_operation(data, "convert", {"format": "png", "keep_profile": True}, max_pixels=LIMIT)
    with Image.open(io.BytesIO(kept.data)) as opened:
        assert opened.info["icc_profile"] == vips_profile("p3")
        original = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        assert np.array_equal(np.asarray(opened.convert("RGB")), original)  # the P3 numbers, untouched
    default = run_operation(data, "convert", {"format": "png"}, max_pixels=LIMIT)
    with Image.open(io.BytesIO(default.data)) as opened:
        assert "icc_profile" not in opened.info  # sRGB, untagged
        assert delta_e(np.asarray(opened.convert("RGB"))[:, :, ::-1], vips_thumbnail(data, 512))[0] <= 2


# ---------------------------------------------------------------- animations


def _animated_gif(frames: int = 6) -> tuple[bytes, list[int]]:
    base = np.asarray(astronaut().resize((120, 90)))
    pictures = [Image.fromarray(np.roll(base, 15 * i, axis=1)) for i in range(frames)]
    durations = [40 + 10 * i for i in range(frames)]
    out = io.BytesIO()
    pictures[0].save(out, "GIF", save_all=True, append_images=pictures[1:], duration=durations, loop=0)
    return out.getvalue(), durations


def _frames_of(data: bytes) -> tuple[list[tuple[int, int]], list[int]]:
    with Image.open(io.BytesIO(data)) as img:
        sizes, durations = [], []
        for index in range(img.n_frames):
            img.seek(index)
            img.load()
            sizes.append(img.size)
            durations.append(int(img.info["duration"]))
    return sizes, durations


@pytest.mark.parametrize("fmt", ["webp", "png"])
def test_resize_and_pipelines_keep_every_frame_and_its_duration(fmt):
    data, durations = _animated_gif()
    out = run_operation(
        data,
        "pipeline",
        {
            "steps": [
                {"operation": "resize", "params": {"width": 60}},
                {"operation": "convert", "params": {"format": fmt}},
            ]
        },
        max_pixels=LIMIT,
    )
    assert (out.frames, out.notes, out.width, out.height) == (6, (), 60, 45)
    sizes, got = _frames_of(out.data)
    assert sizes == [(60, 45)] * 6 and got == durations
    resized = run_operation(data, "resize", {"width": 60}, max_pixels=LIMIT)  # GIF in → APNG out
    assert resized.format == "png" and _frames_of(resized.data)[1] == durations


def test_an_animation_says_when_only_its_first_frame_was_used():
    data, _ = _animated_gif()
    as_jpeg = run_operation(data, "convert", {"format": "jpeg"}, max_pixels=LIMIT)
    assert as_jpeg.frames == 1 and "only the first of the 6 frames" in as_jpeg.notes[0]
    assert as_jpeg.details()["notes"] == list(as_jpeg.notes)
    over = run_operation(data, "resize", {"width": 60}, max_pixels=LIMIT, max_frames=4)
    assert over.frames == 1 and "more than the limit of 4 frames" in over.notes[0]


def test_an_avif_claiming_81_megapixels_is_refused_from_its_header():
    import struct

    small = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 20, 30)).save(small, "AVIF")
    data = small.getvalue()
    at = data.find(b"ispe")  # the image spatial extents property: version/flags, width, height
    bomb = data[: at + 8] + struct.pack(">II", 9000, 9000) + data[at + 16 :]
    assert len(bomb) < 1000  # nothing to decode: the header alone is refused
    with pytest.raises(ImageRejected, match="9000×9000 pixels, more than the limit"):
        analyze_upload(bomb, max_pixels=LIMIT, max_frames=200, thumbnail_sizes=(256,))


def test_an_animated_webp_keeps_its_frames_through_resize():
    data, durations = _animated_gif(4)
    webp = run_operation(data, "convert", {"format": "webp"}, max_pixels=LIMIT).data
    out = run_operation(webp, "resize", {"width": 30}, max_pixels=LIMIT)  # WebP in → WebP out
    assert (out.format, out.frames, out.width) == ("webp", 4, 30)
    assert _frames_of(out.data) == ([(30, 22)] * 4, durations)
