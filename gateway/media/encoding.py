"""Strict base64 and byte limits shared by image and audio parts."""

from __future__ import annotations

import base64
import binascii
from typing import Literal

from gateway.errors import InvalidMedia, PayloadTooLarge

MediaKind = Literal["image", "audio"]


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
