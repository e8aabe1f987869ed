"""Video containers: which one a file is, from its first bytes, and whether its framing is whole.

Only the containers recognised here reach a demuxer (the gateway's or the engine's), so
FFmpeg's many other formats (playlists, image sequences, raw streams) never see client data.

    MP4    ISO base media file: a ``ftyp`` box whose major brand is not QuickTime's
    MOV    QuickTime: ``ftyp`` with brand ``qt  ``
    WEBM   EBML with DocType ``webm``
    MKV    EBML with DocType ``matroska``
    AVI    RIFF form ``AVI ``

``is_whole`` reads only sizes: the top-level boxes of an MP4/MOV must fit in the data, the
EBML header and the Segment of a WebM/MKV too (a Segment of unknown size is a live stream
and passes), and the RIFF chunk of an AVI. A file cut short fails it, whatever its codec.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
_EBML_DOCTYPE = 0x4282
_SEGMENT = 0x18538067


@dataclass(frozen=True)
class Container:
    """A recognised container: its name (as ``video_formats`` lists it) and MIME type."""

    name: str
    mime_type: str


CONTAINERS = {
    "MP4": Container("MP4", "video/mp4"),
    "MOV": Container("MOV", "video/quicktime"),
    "WEBM": Container("WEBM", "video/webm"),
    "MKV": Container("MKV", "video/x-matroska"),
    "AVI": Container("AVI", "video/x-msvideo"),
}


def sniff(data: bytes) -> Container | None:
    """The container ``data`` starts like, or None."""
    if data[4:8] == b"ftyp":
        return CONTAINERS["MOV" if data[8:12] == b"qt  " else "MP4"]
    if data[:4] == _EBML_MAGIC:
        doctype = _ebml_doctype(data)
        return {b"webm": CONTAINERS["WEBM"], b"matroska": CONTAINERS["MKV"]}.get(doctype or b"")
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return CONTAINERS["AVI"]
    return None


def is_whole(data: bytes, container: Container) -> bool:
    """True when every size the container's top level declares fits in ``data``."""
    if container.name in ("MP4", "MOV"):
        return _boxes_fit(data)
    if container.name in ("WEBM", "MKV"):
        return _ebml_fits(data)
    return len(data) >= 8 + struct.unpack_from("<I", data, 4)[0]


def _boxes_fit(data: bytes) -> bool:
    pos = 0
    while pos + 8 <= len(data):
        size = struct.unpack_from(">I", data, pos)[0]
        if size == 1:
            if pos + 16 > len(data):
                return False
            size = struct.unpack_from(">Q", data, pos + 8)[0]
        elif size == 0:  # the last box runs to the end of the file
            return True
        if size < 8 or pos + size > len(data):
            return False
        pos += size
    return True


def _vint(data: bytes, pos: int, *, marker: bool) -> tuple[int, int] | None:
    """An EBML variable-length integer at ``pos``: (value, length), or None if cut short.

    Element IDs keep their length marker bit (``marker=True``); sizes drop it, and a size
    of all ones (unknown) comes back as -1.
    """
    if pos >= len(data) or data[pos] == 0:
        return None
    length = 9 - data[pos].bit_length()
    if pos + length > len(data):
        return None
    value = int.from_bytes(data[pos : pos + length], "big")
    if marker:
        return value, length
    value &= (1 << (7 * length)) - 1
    return (-1 if value == (1 << (7 * length)) - 1 else value), length


def _element(data: bytes, pos: int) -> tuple[int, int, int] | None:
    """(id, start of the payload, payload size) of the EBML element at ``pos``."""
    element_id = _vint(data, pos, marker=True)
    if element_id is None:
        return None
    size = _vint(data, pos + element_id[1], marker=False)
    if size is None:
        return None
    return element_id[0], pos + element_id[1] + size[1], size[0]


def _ebml_doctype(data: bytes) -> bytes | None:
    header = _element(data, 0)
    if header is None or header[2] < 0:
        return None
    pos, end = header[1], min(len(data), header[1] + header[2])
    while pos < end:
        child = _element(data, pos)
        if child is None or child[2] < 0:
            return None
        if child[0] == _EBML_DOCTYPE:
            return data[child[1] : child[1] + child[2]].rstrip(b"\0")
        pos = child[1] + child[2]
    return None


def _ebml_fits(data: bytes) -> bool:
    header = _element(data, 0)
    if header is None or header[2] < 0 or header[1] + header[2] > len(data):
        return False
    segment = _element(data, header[1] + header[2])
    if segment is None or segment[0] != _SEGMENT:
        return False
    return segment[2] < 0 or segment[1] + segment[2] <= len(data)
