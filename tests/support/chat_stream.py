"""Reading a chat stream from the openai client to its end, or to the error that ends it."""

from __future__ import annotations

from typing import Any

import openai


def drain(stream: Any) -> tuple[str, openai.APIError | None]:
    """A chat stream's content until it ends or breaks, and the error that broke it."""
    shown = ""
    try:
        for chunk in stream:
            shown += "".join(c.delta.content or "" for c in chunk.choices)
    except openai.APIError as exc:
        return shown, exc
    return shown, None
