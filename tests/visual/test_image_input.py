"""Uploaded images: a corpus of broken, hostile and awkward files, each refused with its code or decoded right, and
the embedding model's input contract."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from shelfwise.visual.images import (
    BACKGROUND,
    DEFAULT_LIMITS,
    MAX_IMAGE_BYTES,
    ContentTypeMismatchError,
    CorruptImageError,
    DecompressionBombError,
    ImageError,
    ImageLimits,
    ImageTooLargeError,
    ImageTooSmallError,
    NotAnImageError,
    TooManyPixelsError,
    UnsupportedFormatError,
    UnsupportedMediaTypeError,
    decode_image,
    to_model_input,
)
from shelfwise.world.images import Style, png_bytes, render

RED, BLUE = (220, 30, 30), (30, 30, 220)


# ---- building files --------------------------------------------------------------------------------------------


def encoded(image: Image.Image, image_format: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def noise(width: int = 90, height: int = 120, seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bilevel_png(width: int, height: int, *, rows: int | None = None) -> bytes:
    """A 1-bit grey PNG of zeros built with zlib, streaming, so that a huge one costs little time and memory;
    `rows` < height writes only that many rows (a header that lies about the data)."""
    row = b"\x00" * (1 + (width + 7) // 8)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row * 1000) for _ in range((rows if rows is not None else height) // 1000))
    body += compressor.compress(row * ((rows if rows is not None else height) % 1000)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def mean_colour(image: Image.Image) -> tuple[float, ...]:
    return tuple(np.asarray(image, dtype=np.float64).reshape(-1, 3).mean(axis=0))


def assert_refused(data: bytes, content_type: str | None, kind: type[ImageError], code: str, status: int) -> None:
    with pytest.raises(kind) as refused:
        decode_image(data, content_type)
    assert (refused.value.code, int(refused.value.status)) == (code, status)
    assert refused.value.message == str(refused.value)


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The size of every image Pillow decodes during the test."""
    seen: list[tuple[int, int]] = []
    original = ImageFile.ImageFile.load

    def counting(self: ImageFile.ImageFile) -> Any:
        seen.append(self.size)
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", counting)
    return seen


# ---- not images, and files that break ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello, this is a text file\n",
        b"<!DOCTYPE html><html><body><img src='shirt.png'></body></html>",
        b'{"image": "iVBORw0KGgo="}',
        base64.b64encode(encoded(noise(), "PNG")),  # still base64: the client forgot to decode it
        b"\x89PNX\r\n\x1a\n" + b"\x00" * 64,
    ],
    ids=["empty", "text", "html", "json", "base64-of-png", "bad-magic"],
)
def test_what_is_not_an_image_is_refused_as_such(data: bytes) -> None:
    assert_refused(data, None, NotAnImageError, "not_an_image", 400)


@pytest.mark.parametrize("image_format", ["PNG", "JPEG", "WEBP"])
@pytest.mark.parametrize("kept", [0.02, 0.2, 0.5, 0.8, 0.95, 0.99])
def test_a_file_cut_short_is_corrupt(image_format: str, kept: float) -> None:
    whole = encoded(noise(), image_format)
    assert_refused(whole[: int(len(whole) * kept)], None, CorruptImageError, "corrupt_image", 400)


@pytest.mark.parametrize("image_format", ["PNG", "JPEG", "WEBP"])
def test_a_file_missing_only_its_last_pixels_is_corrupt(image_format: str) -> None:
    whole = encoded(noise(), image_format)
    assert_refused(whole[:-16], None, CorruptImageError, "corrupt_image", 400)


def test_the_cut_files_decode_whole() -> None:
    """The control of the two tests above: the same files, uncut, decode."""
    for image_format in ("PNG", "JPEG", "WEBP"):
        assert decode_image(encoded(noise(), image_format), None).size == (90, 120)


@pytest.mark.parametrize("chunk_kind", [b"IHDR", b"IDAT"])
def test_a_png_chunk_with_a_bad_crc_is_corrupt(chunk_kind: bytes) -> None:
    data = bytearray(encoded(noise(), "PNG"))
    start = data.index(chunk_kind) - 4
    (length,) = struct.unpack(">I", data[start : start + 4])
    data[start + 8 + length] ^= 0xFF  # first byte of the chunk's CRC
    assert_refused(bytes(data), None, CorruptImageError, "corrupt_image", 400)


def test_a_png_with_garbage_inside_its_compressed_data_is_corrupt() -> None:
    data = bytearray(encoded(noise(), "PNG"))
    start = data.index(b"IDAT") + 4
    data[start + 100 : start + 140] = b"\xa5" * 40
    # The CRC is recomputed so that only the decompression can find the damage.
    end = start + struct.unpack(">I", data[start - 8 : start - 4])[0]
    data[end : end + 4] = struct.pack(">I", zlib.crc32(bytes(data[start - 4 : end])))
    assert_refused(bytes(data), None, CorruptImageError, "corrupt_image", 400)


# ---- sizes: bombs, too many pixels, too few, too many bytes ---------------------------------------------------


def test_a_decompression_bomb_is_refused_before_any_pixel_is_decoded(loads: list[tuple[int, int]]) -> None:
    bomb = bilevel_png(30_000, 30_000)  # 900 million pixels: 2.7 GB as RGB
    assert len(bomb) < 200_000
    assert_refused(bomb, "image/png", DecompressionBombError, "decompression_bomb", 422)
    assert loads == []


def test_pillows_bomb_warning_is_an_error_and_does_not_leak(recwarn: pytest.WarningsRecorder) -> None:
    """100 M pixels: above Pillow's warning threshold (89 M), below its error threshold (179 M)."""
    assert Image.MAX_IMAGE_PIXELS is not None
    assert Image.MAX_IMAGE_PIXELS < 10_000 * 10_000 < 2 * Image.MAX_IMAGE_PIXELS
    assert_refused(bilevel_png(10_000, 10_000, rows=10), None, DecompressionBombError, "decompression_bomb", 422)
    assert [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)] == []


def test_a_legal_file_over_the_pixel_limit_is_refused_without_decoding(loads: list[tuple[int, int]]) -> None:
    image = bilevel_png(7_000, 6_000)  # 42 M pixels, all data present, a few kB
    assert len(image) < DEFAULT_LIMITS.max_bytes
    assert DEFAULT_LIMITS.max_pixels < 7_000 * 6_000
    assert_refused(image, "image/png", TooManyPixelsError, "too_many_pixels", 422)
    assert loads == []


def test_a_strip_longer_than_the_longest_side_is_refused() -> None:
    strip = bilevel_png(DEFAULT_LIMITS.max_side + 1, 40)
    assert_refused(strip, None, TooManyPixelsError, "too_many_pixels", 422)


def test_the_pixel_limit_is_inclusive() -> None:
    limits = ImageLimits(max_pixels=100 * 60)
    assert decode_image(encoded(noise(100, 60), "PNG"), None, limits).size == (100, 60)
    with pytest.raises(TooManyPixelsError, match="101x60"):
        decode_image(encoded(noise(101, 60), "PNG"), None, limits)


@pytest.mark.parametrize(("width", "height"), [(1, 1), (8, 8), (31, 400), (400, 31)])
def test_tiny_images_are_refused(width: int, height: int) -> None:
    for image_format in ("PNG", "JPEG"):
        data = encoded(noise(width, height), image_format)
        assert_refused(data, None, ImageTooSmallError, "image_too_small", 422)


def test_the_smallest_legal_image_decodes() -> None:
    assert decode_image(encoded(noise(32, 32), "PNG"), None).size == (32, 32)


def test_a_file_over_the_byte_limit_is_refused_before_anything_else() -> None:
    huge = b"\xff\xd8\xff" + b"\x00" * MAX_IMAGE_BYTES
    assert_refused(huge, "text/plain", ImageTooLargeError, "image_too_large", 413)
    assert decode_image(encoded(noise(), "JPEG"), None, ImageLimits(max_bytes=100_000)).size == (90, 120)


def test_the_byte_limit_fits_a_synchronous_lambda_invocation_once_base64_encoded() -> None:
    lambda_payload = 6 * 1024 * 1024
    encoded_image = 4 * -(-MAX_IMAGE_BYTES // 3)
    assert encoded_image + 512 * 1024 < lambda_payload  # room for the proxy event around the body
    assert lambda_payload < 4 * -(-(MAX_IMAGE_BYTES + 1024 * 1024) // 3)  # and not much more could fit


# ---- formats and content types --------------------------------------------------------------------------------


@pytest.mark.parametrize("image_format", ["GIF", "BMP", "TIFF"])
def test_other_image_formats_are_unsupported_and_named(image_format: str) -> None:
    data = encoded(noise(), image_format)
    with pytest.raises(UnsupportedFormatError, match=image_format) as refused:
        decode_image(data, None)
    assert (refused.value.code, int(refused.value.status)) == ("unsupported_format", 415)


def test_an_iphone_heic_is_unsupported_and_named() -> None:
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 100
    with pytest.raises(UnsupportedFormatError, match="HEIC"):
        decode_image(heic, None)


@pytest.mark.parametrize(
    ("image_format", "declared"),
    [("JPEG", "image/png"), ("PNG", "image/jpeg"), ("WEBP", "image/png"), ("PNG", "image/webp")],
)
def test_a_declared_type_that_disagrees_with_the_file_is_refused(image_format: str, declared: str) -> None:
    with pytest.raises(ContentTypeMismatchError, match=f"says {declared[6:].upper()} but the image is {image_format}"):
        decode_image(encoded(noise(), image_format), declared)


@pytest.mark.parametrize("declared", ["image/jpg", "image/gif", "text/plain", "application/octet-stream", ""])
def test_a_declared_type_the_api_does_not_take_is_refused(declared: str) -> None:
    assert_refused(encoded(noise(), "JPEG"), declared, UnsupportedMediaTypeError, "unsupported_media_type", 415)


@pytest.mark.parametrize("declared", [None, "image/jpeg", "IMAGE/JPEG", "image/jpeg; charset=binary", " image/jpeg"])
def test_declared_types_are_read_without_case_or_parameters(declared: str | None) -> None:
    assert decode_image(encoded(noise(), "JPEG"), declared).mode == "RGB"


def test_a_format_left_out_of_the_limits_is_refused() -> None:
    limits = ImageLimits(formats=frozenset({"JPEG", "PNG"}))
    with pytest.raises(UnsupportedFormatError, match="WEBP"):
        decode_image(encoded(noise(), "WEBP"), None, limits)


# ---- the legal ones decode right ------------------------------------------------------------------------------


def test_a_lossless_webp_decodes_to_its_pixels() -> None:
    image = noise()
    decoded = decode_image(encoded(image, "WEBP", lossless=True), "image/webp")
    assert np.array_equal(np.asarray(decoded), np.asarray(image))


def test_a_png_decodes_to_its_pixels() -> None:
    image = noise()
    assert np.array_equal(np.asarray(decode_image(encoded(image, "PNG"), None)), np.asarray(image))


@pytest.mark.parametrize("image_format", ["PNG", "WEBP"])
def test_an_animated_image_gives_its_first_frame(image_format: str) -> None:
    frames = [Image.new("RGB", (48, 48), RED), Image.new("RGB", (48, 48), BLUE)]
    animation = {"save_all": True, "append_images": frames[1:], "duration": 100, "loop": 0, "lossless": True}
    data = encoded(frames[0], image_format, **animation)
    assert Image.open(io.BytesIO(data)).n_frames == 2
    assert mean_colour(decode_image(data, None)) == pytest.approx(RED, abs=2)


def test_a_cmyk_jpeg_becomes_rgb_with_its_colour() -> None:
    cmyk = Image.new("CMYK", (48, 48), (0, 255, 255, 0))  # no cyan, full magenta and yellow: red
    decoded = decode_image(encoded(cmyk, "JPEG", quality=95), "image/jpeg")
    assert decoded.mode == "RGB"
    assert mean_colour(decoded) == pytest.approx((255, 0, 0), abs=4)


def test_a_16_bit_grey_png_is_scaled_not_clipped() -> None:
    grey = np.full((40, 40), 32_896, dtype=np.uint16)  # 128 x 257: mid grey
    data = encoded(Image.fromarray(grey), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    assert mean_colour(decode_image(data, None)) == pytest.approx((128, 128, 128), abs=0.5)


def test_a_palette_png_with_a_transparent_index_shows_the_studio_background() -> None:
    image = Image.new("P", (40, 40), 0)
    image.putpalette([0, 0, 0, *RED] + [0] * 762)
    image.paste(1, (0, 0, 20, 40))  # left half red, right half index 0: transparent
    decoded = np.asarray(decode_image(encoded(image, "PNG", transparency=0), None))
    assert tuple(decoded[10, 5]) == RED
    assert tuple(decoded[10, 35]) == BACKGROUND


def test_alpha_is_composited_onto_the_studio_background() -> None:
    rgba = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    rgba.paste((0, 0, 0, 128), (20, 0, 40, 40))
    decoded = np.asarray(decode_image(encoded(rgba, "PNG"), None), dtype=np.float64)
    assert tuple(decoded[0, 0]) == BACKGROUND
    assert decoded[0, 39] == pytest.approx(np.array(BACKGROUND) * 127 / 255, abs=1.5)


def test_exif_orientation_is_applied() -> None:
    stored = Image.new("RGB", (60, 40), BLUE)
    stored.paste(RED, (0, 0, 30, 40))  # left half red as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation 6: display rotated 90 degrees clockwise
    decoded = decode_image(encoded(stored, "JPEG", exif=exif.tobytes(), quality=95), None)
    assert decoded.size == (40, 60)
    pixels = np.asarray(decoded, dtype=np.float64)
    assert pixels[:25].reshape(-1, 3).mean(axis=0) == pytest.approx(RED, abs=6)  # the left became the top
    assert pixels[35:].reshape(-1, 3).mean(axis=0) == pytest.approx(BLUE, abs=6)


def test_a_big_jpeg_is_decoded_at_a_reduced_scale_keeping_the_draft_side() -> None:
    photo = encoded(noise(2_400, 1_800).resize((2_400, 1_800)), "JPEG", quality=80)
    decoded = decode_image(photo, None)
    assert decoded.size == (2_400 // 4, 1_800 // 4)  # 1/8 would make the short side 225 < 256
    assert min(decoded.size) >= DEFAULT_LIMITS.draft_side


# ---- the model's input ----------------------------------------------------------------------------------------


def catalogue_pixels() -> np.ndarray:
    style = Style(0.6, 0.7, 0.8, 1.0, 0.5, -0.5, 0.6, 1.0, True, 2.0, 1.0)
    return render(3, style)


def test_a_catalogue_image_becomes_exactly_its_pixels() -> None:
    pixels = catalogue_pixels()
    model_input = to_model_input(decode_image(png_bytes(pixels), "image/png"), 64)
    assert model_input.shape == (1, 3, 64, 64)
    assert model_input.dtype == np.float32
    assert model_input.flags.c_contiguous
    assert np.array_equal(model_input[0].transpose(1, 2, 0), pixels.astype(np.float32) / 255)


@pytest.mark.parametrize("size", [32, 64, 97])
def test_model_input_is_channels_first_float32_in_unit_range(size: int) -> None:
    model_input = to_model_input(noise(300, 200), size)
    assert model_input.shape == (1, 3, size, size)
    assert model_input.dtype == np.float32
    assert model_input.min() >= 0.0
    assert model_input.max() <= 1.0


def test_a_wide_image_is_padded_to_a_square_keeping_its_aspect() -> None:
    model_input = to_model_input(Image.new("RGB", (200, 100), RED), 64)[0]
    red = np.array(RED, dtype=np.float32)[:, None, None] / 255
    background = np.array(BACKGROUND, dtype=np.float32)[:, None, None] / 255
    assert np.allclose(model_input[:, 16:48, :], red, atol=1e-6)  # 64 x 32 in the middle
    assert np.allclose(model_input[:, :15, :], background, atol=1e-6)
    assert np.allclose(model_input[:, 49:, :], background, atol=1e-6)


def test_a_tall_image_is_padded_left_and_right() -> None:
    model_input = to_model_input(Image.new("RGB", (50, 200), BLUE), 64)[0]
    assert np.allclose(model_input[2, :, 28:36], BLUE[2] / 255, atol=1e-6)
    assert np.allclose(model_input[2, :, :6], BACKGROUND[2] / 255, atol=1e-6)


def test_model_input_takes_grey_and_transparent_images_too() -> None:
    grey = to_model_input(Image.new("L", (40, 40), 128), 32)
    assert np.allclose(grey, 128 / 255, atol=1e-6)
    clear = to_model_input(Image.new("RGBA", (40, 40), (0, 0, 0, 0)), 32)
    assert np.allclose(clear[0, :, 5, 5], np.array(BACKGROUND) / 255, atol=1e-6)


def test_model_input_refuses_a_size_of_zero() -> None:
    with pytest.raises(ValueError, match="size"):
        to_model_input(noise(), 0)


# ---- fuzzing: whatever arrives, an ImageError or an RGB image within the limits -------------------------------

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SEEDS: dict[str, bytes] = {
    "PNG": encoded(noise(40, 36), "PNG"),
    "JPEG": encoded(noise(40, 36), "JPEG"),
    "WEBP": encoded(noise(40, 36), "WEBP"),
    "RGBA-PNG": encoded(noise(40, 36).convert("RGBA"), "PNG"),
}
content_types = st.sampled_from([None, "image/png", "image/jpeg", "image/webp", "text/plain"]) | st.text(max_size=30)


def flip(data: bytes, position: int, value: int) -> bytes:
    at = position % len(data)
    return data[:at] + bytes([value]) + data[at + 1 :]


mutations: st.SearchStrategy[Callable[[bytes], bytes]] = st.one_of(
    st.tuples(st.integers(0, 10**6), st.integers(0, 255)).map(lambda p: lambda d: flip(d, *p)),
    st.integers(1, 10**6).map(lambda n: lambda d: d[: n % len(d)]),
    st.tuples(st.integers(0, 10**6), st.binary(min_size=1, max_size=16)).map(
        lambda p: lambda d: d[: p[0] % len(d)] + p[1] + d[p[0] % len(d) :]
    ),
)


def assert_decodes_or_refuses(data: bytes, content_type: str | None) -> None:
    """An ImageError with a client status, code and message, or an RGB image within the limits."""
    refusal: ImageError | None = None
    try:
        image = decode_image(data, content_type)
    except ImageError as error:
        refusal = error
    if refusal is not None:
        assert 400 <= refusal.status < 500
        assert refusal.code
        assert refusal.message
        return
    assert image.mode == "RGB"
    assert DEFAULT_LIMITS.min_side <= min(image.size)
    assert max(image.size) <= DEFAULT_LIMITS.max_side


@FUZZ
@given(data=st.binary(max_size=2_000), content_type=content_types)
def test_arbitrary_bytes_never_escape_as_anything_but_an_image_error(data: bytes, content_type: str | None) -> None:
    assert_decodes_or_refuses(data, content_type)


@FUZZ
@given(
    seed=st.sampled_from(sorted(SEEDS)),
    changes=st.lists(mutations, min_size=1, max_size=4),
    content_type=st.sampled_from([None, "image/png"]),
)
def test_damaged_real_images_never_escape_as_anything_but_an_image_error(
    seed: str, changes: list[Callable[[bytes], bytes]], content_type: str | None
) -> None:
    data = SEEDS[seed]
    for change in changes:
        data = change(data) or data
    assert_decodes_or_refuses(data, content_type)
