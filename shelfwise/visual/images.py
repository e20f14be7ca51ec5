"""Uploaded images to the embedding model's input: refuse what is not a safe, legal JPEG, PNG or WEBP, decode the
rest to RGB, and lay it out as the catalogue's images are (a square on the studio background).

Every refusal is an `ImageError` carrying an error code, a client-facing message and an HTTP status; no Pillow, zlib
or OS error escapes `decode_image`. The order of the checks is the order of their cost: bytes, declared type, the
format sniffed from the magic number, the header's dimensions, then the decode. The header's dimensions are checked
right after `Image.open` and before anything is decompressed, so a decompression bomb costs a header read.

Pillow's own guard fires inside `Image.open`, from a process-wide setting left alone here: a warning above
`Image.MAX_IMAGE_PIXELS` (89 M by default), an error above twice that; both are refused as a decompression bomb.
Between `ImageLimits.max_pixels` and that threshold ours refuses (too many pixels). `ImageFile.LOAD_TRUNCATED_IMAGES`,
also process-wide, must stay False (Pillow's default), or truncated JPEGs decode with grey in place of the missing
rows.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Final, Literal

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps

ImageFormat = Literal["JPEG", "PNG", "WEBP"]
ModelInput = NDArray[np.float32]

#: The registered media types of the accepted formats. `image/jpg` is not one: API Gateway would pass it as text
#: unless `binaryMediaTypes` listed it too, so it is refused with a hint rather than half-supported.
MEDIA_TYPES: Final[dict[str, ImageFormat]] = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}
#: The catalogue's studio background (`shelfwise.world.images`): padding and transparency become this colour.
BACKGROUND: Final = (242, 242, 240)

#: A synchronous Lambda invocation carries at most 6 MiB (6,291,456 bytes). Base64 turns 3 bytes into 4, so a
#: 4 MiB image is 5,592,408 characters, leaving 699,048 bytes for the proxy event around it (headers, request
#: context, the JSON envelope); 4.5 MiB would leave about 0.
MAX_IMAGE_BYTES: Final = 4 * 1024 * 1024

# What a corrupt or truncated file makes Pillow's decoders raise (UnidentifiedImageError is an OSError).
_DECODE_ERRORS: Final = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, struct.error, zlib.error)


@dataclass(frozen=True)
class ImageLimits:
    """What an uploaded image may be."""

    #: Bytes of the image file (see MAX_IMAGE_BYTES).
    max_bytes: int = MAX_IMAGE_BYTES
    #: 36 MP (6000 x 6000): a 24 MP camera photo or a 12 MP phone photo fits. A PNG this size is 144 MB as RGBA
    #: and 108 MB more as RGB while decoding; phones' 48 MP modes write files beyond max_bytes anyway.
    max_pixels: int = 36_000_000
    #: Longest side: a panorama is fine, a 1 x 36,000,000 strip is not an image of a product.
    max_side: int = 12_000
    #: Shortest side: below this the model sees a blur; a 1x1 tracking pixel is not a photo.
    min_side: int = 32
    #: JPEGs are decoded at the coarsest DCT scale (1/2, 1/4, 1/8) keeping both sides at least this long: the model
    #: reads 64 px. A 4000 x 3000 photo decodes and lays out in 31 ms at 1/8 against 75 ms whole, in 1/64 the memory.
    draft_side: int = 256
    formats: frozenset[ImageFormat] = field(default_factory=lambda: frozenset(MEDIA_TYPES.values()))


DEFAULT_LIMITS: Final = ImageLimits()


# ---- refusals --------------------------------------------------------------------------------------------------


class ImageError(Exception):
    """An image the API refuses; `message` is shown to the client and names no internals."""

    code: str = "invalid_image"
    status: HTTPStatus = HTTPStatus.BAD_REQUEST

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotAnImageError(ImageError):
    code, status = "not_an_image", HTTPStatus.BAD_REQUEST


class CorruptImageError(ImageError):
    code, status = "corrupt_image", HTTPStatus.BAD_REQUEST


class DecompressionBombError(ImageError):
    code, status = "decompression_bomb", HTTPStatus.UNPROCESSABLE_ENTITY


class ImageTooLargeError(ImageError):
    """Too many bytes: the request itself is too large."""

    code, status = "image_too_large", HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class TooManyPixelsError(ImageError):
    code, status = "too_many_pixels", HTTPStatus.UNPROCESSABLE_ENTITY


class ImageTooSmallError(ImageError):
    code, status = "image_too_small", HTTPStatus.UNPROCESSABLE_ENTITY


class UnsupportedFormatError(ImageError):
    """A real image in a format the API does not take."""

    code, status = "unsupported_format", HTTPStatus.UNSUPPORTED_MEDIA_TYPE


class UnsupportedMediaTypeError(ImageError):
    """A declared content type that is not an accepted image type (the shared API's code for a wrong type)."""

    code, status = "unsupported_media_type", HTTPStatus.UNSUPPORTED_MEDIA_TYPE


class ContentTypeMismatchError(ImageError):
    code, status = "content_type_mismatch", HTTPStatus.UNSUPPORTED_MEDIA_TYPE


# ---- sniffing --------------------------------------------------------------------------------------------------

_ACCEPTED_NAMES: Final = "JPEG, PNG or WEBP"
#: Other image formats by their magic numbers, so that a refusal can say what was sent. HEIC is the iPhone's default.
_OTHER_FORMATS: Final = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"8BPS", "PSD"),
    (b"%PDF", "PDF"),
)
_ISO_BRANDS: Final = {b"heic": "HEIC", b"heix": "HEIC", b"hevc": "HEIC", b"mif1": "HEIF", b"avif": "AVIF"}


def accepted_format(data: bytes) -> ImageFormat | None:
    """The accepted format the file's magic number names, if any."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def other_format(data: bytes) -> str | None:
    """The name of another image format the file's magic number names, if any."""
    if data[4:8] == b"ftyp" and data[8:12] in _ISO_BRANDS:
        return _ISO_BRANDS[data[8:12]]
    return next((name for magic, name in _OTHER_FORMATS if data.startswith(magic)), None)


def declared_format(content_type: str | None) -> ImageFormat | None:
    """The accepted format a Content-Type names (parameters and case ignored); None when nothing is declared."""
    if content_type is None:
        return None
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type not in MEDIA_TYPES:
        shown = media_type[:60] or "an empty type"
        raise UnsupportedMediaTypeError(
            f"content type {shown!r} is not accepted; send image/jpeg, image/png or image/webp"
        )
    return MEDIA_TYPES[media_type]


def checked_format(data: bytes, content_type: str | None, limits: ImageLimits) -> ImageFormat:
    """The file's format if the API takes it and it is what the client declared."""
    declared = declared_format(content_type)
    found = accepted_format(data)
    if found is None:
        other = other_format(data)
        if other is None:
            raise NotAnImageError(f"the data is not an image; send {_ACCEPTED_NAMES}")
        raise UnsupportedFormatError(f"{other} images are not accepted; send {_ACCEPTED_NAMES}")
    if found not in limits.formats:
        raise UnsupportedFormatError(f"{found} images are not accepted here")
    if declared is not None and declared != found:
        raise ContentTypeMismatchError(f"the content type says {declared} but the image is {found}")
    return found


# ---- decoding --------------------------------------------------------------------------------------------------


def check_dimensions(width: int, height: int, limits: ImageLimits) -> None:
    if width * height > limits.max_pixels or max(width, height) > limits.max_side:
        raise TooManyPixelsError(
            f"the image is {width}x{height} pixels; the limit is {limits.max_pixels:,} pixels "
            f"and {limits.max_side} per side"
        )
    if min(width, height) < limits.min_side:
        raise ImageTooSmallError(f"the image is {width}x{height} pixels; each side must be at least {limits.min_side}")


def decode_image(data: bytes, content_type: str | None, limits: ImageLimits = DEFAULT_LIMITS) -> Image.Image:
    """The uploaded file as an RGB image, upright (EXIF orientation applied), transparency on the studio background.

    `content_type` is the declared media type, None when the request declares none (a JSON body). An animated PNG or
    WEBP gives its first frame: it is the still a browser shows, decoding it costs one frame, and shoppers' apps save
    stickers and live photos that way; refusing them would fail real uploads for no safety gain.
    """
    if not data:
        raise NotAnImageError("the image is empty")
    if len(data) > limits.max_bytes:
        raise ImageTooLargeError(f"the image is {len(data):,} bytes; the limit is {limits.max_bytes:,}")
    image_format = checked_format(data, content_type, limits)
    try:
        # Pillow's bomb guard warns above MAX_IMAGE_PIXELS; as an error it is refused like the one above twice that.
        # (catch_warnings changes the process's filters while it runs: one Lambda request runs at a time.)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return _decoded(data, image_format, limits)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DecompressionBombError(
            "the image declares far more pixels than the decoder accepts; refused as a possible decompression bomb"
        ) from None
    except _DECODE_ERRORS:
        raise CorruptImageError(f"the {image_format} file is truncated or corrupt") from None


def _decoded(data: bytes, image_format: ImageFormat, limits: ImageLimits) -> Image.Image:
    with Image.open(io.BytesIO(data), formats=[image_format]) as header:
        check_dimensions(*header.size, limits)
        # verify() reads the whole file's structure (a PNG's chunk CRCs) without decoding, and leaves the image
        # unusable: the decode below opens it again.
        header.verify()
    with Image.open(io.BytesIO(data), formats=[image_format]) as image:
        if image_format == "JPEG":
            image.draft("RGB", (limits.draft_side, limits.draft_side))
        image.load()
        ImageOps.exif_transpose(image, in_place=True)
        return to_rgb(image)


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB with any transparency composited onto the studio background; 16-bit grey scaled, not clipped."""
    if image.mode.startswith("I"):
        # Pillow's I;16 -> L conversion clips at 255 instead of scaling: a 16-bit grey PNG would come out white.
        grey = np.clip(np.asarray(image, dtype=np.float64) / 257.0, 0, 255).round().astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        background = Image.new("RGBA", image.size, (*BACKGROUND, 255))
        return Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")
    return image.convert("RGB")


# ---- the model's input -----------------------------------------------------------------------------------------


def to_model_input(image: Image.Image, size: int) -> ModelInput:
    """float32 (1, 3, size, size) in [0, 1], channels first: the image scaled to fit a size x size square, centred
    on the studio background (aspect kept), as the catalogue's images are drawn."""
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    rgb = image if image.mode == "RGB" else to_rgb(image)
    scale = size / max(rgb.size)
    fitted = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
    # reducing_gap first shrinks by whole factors (cheap box filter), then Lanczos does the rest: same look, faster.
    resized = rgb.resize(fitted, Image.Resampling.LANCZOS, reducing_gap=3.0)
    canvas = Image.new("RGB", (size, size), BACKGROUND)
    canvas.paste(resized, ((size - fitted[0]) // 2, (size - fitted[1]) // 2))
    pixels = np.asarray(canvas, dtype=np.float32) / np.float32(255.0)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1)[np.newaxis])
