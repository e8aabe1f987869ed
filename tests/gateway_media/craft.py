"""Hand-built media for edge cases Pillow and soundfile will not write on their own."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but whose pixel data is a few bytes.

    A full decode of it fails (the data is short), so a refusal for its size proves
    the header was checked before decoding.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


def image_bytes(fmt: str, width: int = 32, height: int = 24, mode: str = "RGB") -> bytes:
    image = Image.new(mode, (width, height), 120 if mode in ("L", "1") else (10, 120, 200))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def noisy_png(width: int = 256, height: int = 256) -> bytes:
    """A PNG of random pixels, so its compressed data is long enough to cut in half."""
    pixels = np.random.default_rng(7).integers(0, 255, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


# MP4 edits. OpenCV writes ftyp, free, mdat, moov: one track, one sample per chunk.
_STBL = (b"moov", b"trak", b"mdia", b"minf", b"stbl")


def _box(data: bytes | bytearray, path: tuple[bytes, ...], start: int = 0) -> tuple[int, int]:
    """(offset, size) of the box at ``path`` (32-bit sizes only, as OpenCV writes them)."""
    end = len(data)
    for name in path:
        pos = start
        while pos + 8 <= end:
            size, kind = struct.unpack_from(">I4s", data, pos)
            if kind == name:
                break
            pos += size
        else:
            raise KeyError(name)
        start, end = pos + 8, pos + size
    return start - 8, end - start + 8


def faststart(mp4: bytes) -> bytes:
    """The same MP4 with ``moov`` moved before ``mdat`` (chunk offsets shifted to match).

    Cut short, such a file still opens (its sample table comes first) and lacks frames.
    """
    moov_at, moov_size = _box(mp4, (b"moov",))
    mdat_at, _ = _box(mp4, (b"mdat",))
    assert mdat_at < moov_at
    moov = bytearray(mp4[moov_at : moov_at + moov_size])
    stco, _ = _box(moov, (*_STBL[1:], b"stco"), 8)
    (count,) = struct.unpack_from(">I", moov, stco + 12)
    for i in range(count):
        at = stco + 16 + 4 * i
        struct.pack_into(">I", moov, at, struct.unpack_from(">I", moov, at)[0] + moov_size)
    return mp4[:mdat_at] + bytes(moov) + mp4[mdat_at:moov_at] + mp4[moov_at + moov_size :]


def mp4_claiming_frames(mp4: bytes, frames: int) -> bytes:
    """The MP4 with a sample table that claims ``frames`` samples, without adding any.

    ``stsz`` becomes a constant sample size (no per-sample table) and the one ``stts`` entry
    counts ``frames``: a header of a few bytes that FFmpeg reports as ``frames`` frames.
    """
    data = bytearray(mp4)
    stsz, _ = _box(data, (*_STBL, b"stsz"))
    struct.pack_into(">II", data, stsz + 12, 100, frames)
    stts, _ = _box(data, (*_STBL, b"stts"))
    assert struct.unpack_from(">I", data, stts + 12)[0] == 1, "one stts entry expected"
    struct.pack_into(">I", data, stts + 16, frames)
    return bytes(data)


def webm_declaring(webm: bytes, width: int, height: int) -> bytes:
    """A WebM whose track header (PixelWidth/PixelHeight) claims ``width`` x ``height``.

    The VP8 frames keep their real size; FFmpeg reports the header's, and OpenCV scales every
    decoded frame up to it. The source must be 256..65535 pixels each way, so both values
    are stored in two bytes (``0xB0 0x82 w w`` and ``0xBA 0x82 h h``).
    """
    source = _two_byte_sizes(webm)
    assert len(source) == 2, "expected one PixelWidth and one PixelHeight element"
    patched = webm
    for (element, old), new in zip(source, (width, height), strict=True):
        patched = patched.replace(
            element + old.to_bytes(2, "big"), element + new.to_bytes(2, "big"), 1
        )
    return patched


def _two_byte_sizes(webm: bytes) -> list[tuple[bytes, int]]:
    found = []
    for element in (b"\xb0\x82", b"\xba\x82"):
        at = webm.find(element)
        if at >= 0:
            found.append((element, int.from_bytes(webm[at + 2 : at + 4], "big")))
    return found


def _riff_chunk(kind: bytes, data: bytes) -> bytes:
    pad = b"\0" if len(data) % 2 else b""
    return kind + struct.pack("<I", len(data)) + data + pad


def _u24(value: int) -> bytes:
    return struct.pack("<I", value)[:3]


def animated_webp(width: int, height: int, frames: int) -> bytes:
    """An animated WebP on a ``width`` x ``height`` canvas whose frames are 1x1 pixel.

    A few dozen bytes a frame whatever the canvas, as a decompression bomb is: Pillow
    opens it on the canvas, and decoding its first frame allocates canvases of that size.
    """
    still = io.BytesIO()
    Image.new("RGBA", (1, 1), (255, 0, 0, 255)).save(still, format="WEBP", lossless=True)
    vp8l = still.getvalue()[12:]  # the VP8L chunk after the RIFF/WEBP header
    assert vp8l[:4] == b"VP8L"
    animation_and_alpha = 0x12
    vp8x = bytes([animation_and_alpha, 0, 0, 0]) + _u24(width - 1) + _u24(height - 1)
    frame = _u24(0) * 4 + _u24(100) + b"\0" + vp8l  # at 0,0, 1x1, 100 ms
    body = (
        b"WEBP"
        + _riff_chunk(b"VP8X", vp8x)
        + _riff_chunk(b"ANIM", b"\0" * 6)
        + _riff_chunk(b"ANMF", frame) * frames
    )
    return b"RIFF" + struct.pack("<I", len(body)) + body
