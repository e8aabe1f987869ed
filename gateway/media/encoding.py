"""Strict base64, ``data:`` URLs and byte limits shared by image, audio and video parts."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Literal

from gateway.errors import InvalidMedia, PayloadTooLarge

MediaKind = Literal["image", "audio", "video"]

_DATA_URL = re.compile(
    r"data:(?P<mime>[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+)?"
    r"(?P<params>(?:;[a-z0-9!#$&^_.+-]+=[^;,]*)*);base64,(?P<data>.*)",
    re.IGNORECASE | re.DOTALL,
)


def parse_data_url(url: str, *, kind: MediaKind, max_bytes: int, param: str | None) -> bytes:
    """The bytes of a ``data:<kind>/...;base64,...`` URL (error code ``invalid_<kind>``)."""
    match = _DATA_URL.fullmatch(url)
    if match is None:
        raise InvalidMedia(
            f"{kind.capitalize()} URLs must be data:{kind}/<type>;base64,<data> URLs.",
            param=param,
            code=f"invalid_{kind}",
        )
    mime = (match.group("mime") or "").lower()
    if not mime.startswith(f"{kind}/"):
        raise InvalidMedia(
            f"The data URL's media type is {mime or 'missing'}, not {kind}/*.",
            param=param,
            code=f"invalid_{kind}",
        )
    return decode_base64(match.group("data"), max_bytes=max_bytes, param=param, kind=kind)


def decode_base64(payload: object, *, max_bytes: int, param: str | None, kind: MediaKind) -> bytes:
    """Strict base64 (no whitespace, no stray characters), sized before it is decoded.

    Errors carry the codes ``invalid_<kind>`` (400) and ``<kind>_too_large`` (413).
    """
    if not isinstance(payload, str):
        raise InvalidMedia(
            f"The {kind} data must be a base64 string.", param=param, code=f"invalid_{kind}"
        )
    if len(payload) // 4 * 3 > max_bytes + 2:
        raise _too_large(kind, max_bytes, param)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidMedia(
            f"The {kind} is not valid base64.", param=param, code=f"invalid_{kind}"
        ) from exc
    check_size(data, max_bytes=max_bytes, param=param, kind=kind)
    return data


def check_size(data: bytes, *, max_bytes: int, param: str | None, kind: MediaKind) -> None:
    """Refuse empty media (400 ``invalid_<kind>``) and media over ``max_bytes`` (413)."""
    if len(data) > max_bytes:
        raise _too_large(kind, max_bytes, param)
    if not data:
        raise InvalidMedia(f"The {kind} is empty.", param=param, code=f"invalid_{kind}")


def _too_large(kind: MediaKind, max_bytes: int, param: str | None) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The {kind} is larger than the {max_bytes}-byte limit.",
        param=param,
        code=f"{kind}_too_large",
    )
