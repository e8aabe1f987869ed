"""Image checks: strict data URLs, byte and pixel limits, allowed formats, a full decode.

The order matters. Pillow's ``Image.open`` reads only the header, so the format and
``width * height`` are checked before any pixel is decoded: a small file that claims a
huge canvas (a decompression bomb) is refused without allocating it. Only then does
``load()`` decode the image, which catches truncated and corrupt files.

Pillow's own bomb guard (``Image.MAX_IMAGE_PIXELS``) is left as it is; its warning and
error are both turned into refusals here (the warning through ``warnings.catch_warnings``,
which is process-wide; if threads race on it the warning may only be logged, and the
pixel limit, checked right after, still refuses the image). Decoding is CPU work: call
``validate_image_bytes`` / ``image_from_data_url`` from a worker thread. Animated images
(GIF, WebP) are checked on their first frame.
"""

from __future__ import annotations

import base64
import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from gateway.errors import InvalidMedia
from gateway.media.encoding import check_size, parse_data_url
from gateway.media.settings import MediaSettings

# Pillow's JPEG plugin names a multi-picture JPEG (most phone photos) "MPO".
_MIME_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "MPO": "image/jpeg", "GIF": "image/gif"}

_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError)


@dataclass(frozen=True)
class ValidatedImage:
    """An image that passed every check; ``data`` is the original encoded bytes."""

    data: bytes
    format: str
    mime_type: str
    width: int
    height: int

    def data_url(self) -> str:
        """The image as a ``data:`` URL with the MIME type of its real format."""
        return f"data:{self.mime_type};base64,{base64.b64encode(self.data).decode('ascii')}"


def image_from_data_url(url: str, settings: MediaSettings, *, param: str | None) -> ValidatedImage:
    """Decode and validate a data URL image (CPU work: run it in a worker thread)."""
    data = parse_data_url(url, kind="image", max_bytes=settings.max_image_bytes, param=param)
    return validate_image_bytes(data, settings, param=param)


def validate_image_bytes(
    data: bytes, settings: MediaSettings, *, param: str | None
) -> ValidatedImage:
    """Check format and pixels from the header, then decode fully (run in a worker thread)."""
    check_size(data, max_bytes=settings.max_image_bytes, param=param, kind="image")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with _open(data, settings, param=param) as image:
                _check_pixels(image.size, settings, param=param)
                image.load()
                fmt = str(image.format)
                width, height = image.size
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _too_many_pixels(None, settings, param) from exc
        except _DECODE_ERRORS as exc:
            raise InvalidMedia(
                f"The image could not be decoded ({exc}).", param=param, code="invalid_image"
            ) from exc
    mime = _MIME_TYPES.get(fmt) or Image.MIME.get(fmt) or f"image/{fmt.lower()}"
    return ValidatedImage(data=data, format=fmt, mime_type=mime, width=width, height=height)


def _open(data: bytes, settings: MediaSettings, *, param: str | None) -> Image.Image:
    """Open (header only) with just the allowed plugins, naming a refused format if known."""
    try:
        return Image.open(io.BytesIO(data), formats=settings.image_formats)
    except UnidentifiedImageError as exc:
        other = _identify(data)
        if other is None:
            raise InvalidMedia(
                "The data is not an image in an accepted format.",
                param=param,
                code="invalid_image",
            ) from exc
        allowed = ", ".join(settings.image_formats)
        raise InvalidMedia(
            f"Image format {other} is not accepted (accepted: {allowed}).",
            param=param,
            code="unsupported_image_format",
        ) from exc


def _identify(data: bytes) -> str | None:
    """The format any Pillow plugin recognises from the header, without decoding pixels."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return str(image.format)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning, *_DECODE_ERRORS):
        return None


def _check_pixels(size: tuple[int, int], settings: MediaSettings, param: str | None) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise InvalidMedia(f"The image is {width}x{height}.", param=param, code="invalid_image")
    if width * height > settings.max_image_pixels:
        raise _too_many_pixels(size, settings, param)


def _too_many_pixels(
    size: tuple[int, int] | None, settings: MediaSettings, param: str | None
) -> InvalidMedia:
    described = f"{size[0]}x{size[1]} pixels" if size else "too many pixels"
    return InvalidMedia(
        f"The image has {described}; the limit is {settings.max_image_pixels} pixels.",
        param=param,
        code="image_too_many_pixels",
    )
