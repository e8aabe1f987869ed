"""Image checks: strict data URLs, byte, pixel and decode-memory limits, allowed formats, a decode.

The order matters. Pillow's ``Image.open`` reads only the header, so the format,
``width * height`` and the memory a decode would take (``decode_bytes``) are checked
before any pixel is decoded: a small file that claims a huge canvas, or many frames on a
large one (a decompression bomb), is refused without allocating it. ``open_image`` stops
there; ``OpenedImage.decode`` then runs ``load()``, which catches truncated and corrupt
files. In between, the validator reserves ``decode_bytes`` of the process's decode memory
(``gateway.media.budget``).

``decode_bytes`` counts every frame's canvas at 4 bytes a pixel (Pillow's layout of RGB
and RGBA, and of the frames after the first of a GIF), a still L or P image at 1, plus the
two RGBA canvases libwebp's animation decoder keeps for any WebP (a still 4096x4096 WebP
takes about 3 x 64 MiB). Animations (GIF, WebP, APNG) are counted whole, as a decoder that
walks every frame would allocate them; here only their first frame is decoded.

Pillow's own bomb guard (``Image.MAX_IMAGE_PIXELS``) is left as it is; its warning and
error are both turned into refusals here (the warning through ``warnings.catch_warnings``,
which is process-wide; if threads race on it the warning may only be logged, and the
pixel limit, checked right after, still refuses the image). Opening and decoding are CPU
work: call them from a worker thread.
"""

from __future__ import annotations

import base64
import io
import warnings
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from gateway.errors import InvalidMedia
from gateway.media.encoding import check_size, parse_data_url
from gateway.media.settings import MIB, MediaSettings

# Pillow's JPEG plugin names a multi-picture JPEG (most phone photos) "MPO".
_MIME_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "MPO": "image/jpeg", "GIF": "image/gif"}

_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError)
_ONE_BYTE_MODES = frozenset({"1", "L", "P"})
_RGBA_BYTES = 4
#: Canvases a decoder keeps beside Pillow's image: libwebp's current and previous frame.
_DECODER_CANVASES = {"WEBP": 2}


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


@dataclass
class OpenedImage:
    """An image whose header passed every check; no pixel is decoded yet. Close it."""

    data: bytes
    image: Image.Image
    decode_bytes: int
    settings: MediaSettings
    param: str | None

    def decode(self) -> ValidatedImage:
        """Decode the (first) frame, which proves the data whole (run in a worker thread)."""
        with _pillow_errors(self.settings, self.param):
            self.image.load()
        fmt = str(self.image.format)
        width, height = self.image.size
        mime = _MIME_TYPES.get(fmt) or Image.MIME.get(fmt) or f"image/{fmt.lower()}"
        return ValidatedImage(self.data, fmt, mime, width, height)

    def close(self) -> None:
        self.image.close()


def open_image_data_url(url: str, settings: MediaSettings, *, param: str | None) -> OpenedImage:
    """``open_image`` of a data URL's bytes (CPU work: run it in a worker thread)."""
    data = parse_data_url(url, kind="image", max_bytes=settings.max_image_bytes, param=param)
    return open_image(data, settings, param=param)


def open_image(data: bytes, settings: MediaSettings, *, param: str | None) -> OpenedImage:
    """Check bytes, format, pixels and decode memory from the header alone."""
    check_size(data, max_bytes=settings.max_image_bytes, param=param, kind="image")
    with _pillow_errors(settings, param):
        image = _open(data, settings, param=param)
        try:
            _check_pixels(image.size, settings, param)
            needed = decode_bytes(image)
            _check_decode_bytes(image, needed, settings, param)
        except BaseException:
            image.close()
            raise
    return OpenedImage(data, image, needed, settings, param)


def image_from_data_url(url: str, settings: MediaSettings, *, param: str | None) -> ValidatedImage:
    """Open and decode a data URL image (CPU work: run it in a worker thread)."""
    with closing(open_image_data_url(url, settings, param=param)) as opened:
        return opened.decode()


def validate_image_bytes(
    data: bytes, settings: MediaSettings, *, param: str | None
) -> ValidatedImage:
    """Open and decode image bytes (CPU work: run it in a worker thread)."""
    with closing(open_image(data, settings, param=param)) as opened:
        return opened.decode()


def decode_bytes(image: Image.Image) -> int:
    """The memory decoding ``image`` may take, from its header (see the module docstring)."""
    width, height = image.size
    frames = _frames(image)
    first = 1 if frames == 1 and image.mode in _ONE_BYTE_MODES else _RGBA_BYTES
    others = frames - 1 + _DECODER_CANVASES.get(str(image.format), 0)
    return width * height * (first + _RGBA_BYTES * others)


def _frames(image: Image.Image) -> int:
    return max(1, int(getattr(image, "n_frames", 1)))


@contextmanager
def _pillow_errors(settings: MediaSettings, param: str | None) -> Iterator[None]:
    """Pillow's bomb warning and error, and its decode errors, as refusals."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            yield
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _too_many_pixels(None, settings, param) from exc
        except _DECODE_ERRORS as exc:
            raise InvalidMedia(
                f"The image could not be decoded ({exc}).", param=param, code="invalid_image"
            ) from exc


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


def _check_decode_bytes(
    image: Image.Image, needed: int, settings: MediaSettings, param: str | None
) -> None:
    if needed > settings.max_image_decode_bytes:
        width, height = image.size
        frames = _frames(image)
        described = f"{frames} frames of {width}x{height}" if frames > 1 else f"{width}x{height}"
        raise InvalidMedia(
            f"Decoding the image ({described} pixels) would take {needed / MIB:.0f} MiB; "
            f"the limit is {settings.max_image_decode_bytes / MIB:.0f} MiB.",
            param=param,
            code="image_too_large_to_decode",
        )
