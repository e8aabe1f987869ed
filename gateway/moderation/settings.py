"""Settings of the guard (``GATEWAY_GUARD__*``): which classifier screens, and how."""

from __future__ import annotations

from pydantic import BaseModel, Field

from gateway.moderation.scores import DEFAULT_THRESHOLD


class GuardSettings(BaseModel):
    """How guarded keys' prompts and answers are screened (a key chooses whether)."""

    model: str = Field(
        default="auto",
        description="The moderation model (or alias) that screens: 'auto' takes the smallest.",
    )
    default_threshold: float = Field(
        default=DEFAULT_THRESHOLD,
        ge=0,
        le=1,
        description="A category's threshold when the key sets none (flagged above it).",
    )
    stream_check_chars: int = Field(
        default=256,
        ge=1,
        description="A streamed answer is held back and screened every this many characters "
        "(and at its end); nothing unscreened reaches the client.",
    )
    max_chars: int = Field(
        default=16000,
        ge=1,
        description="The most characters of a prompt or answer screened (its end is kept).",
    )
