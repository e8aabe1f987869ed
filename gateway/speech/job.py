"""What a transcription or translation asks for, and which routed variants may serve it.

A variant with the ``transcription`` capability is served by vLLM's endpoint (the form
passed on as sent: vLLM answers for its own options); any other audio variant is served
through chat, which gives ``json``, ``text`` and ``verbose_json`` without timestamps. So a
job asking for ``srt``, ``vtt`` or ``timestamp_granularities`` (or a language the chat
instruction cannot name) keeps only the endpoint's variants, and is a 400 naming the
field when none is left.

For ``auto`` and aliases the endpoint's variants come first (healthy ones before
unhealthy ones, smallest first within each group): vLLM's endpoint uses the prompt the
model was trained on and splits long clips into chunks. A named model stays first.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from gateway.errors import InvalidRequest
from gateway.model_info import ModelInfo
from gateway.routing import Needs, Route, audio_needs
from gateway.speech.languages import language_name

Task = Literal["transcribe", "translate"]
ENDPOINT_CAPABILITY = "transcription"
RESPONSE_FORMATS = ("json", "text", "verbose_json", "srt", "vtt")
CHAT_FORMATS = ("json", "text", "verbose_json")
TIMESTAMP_FIELDS = ("timestamp_granularities[]", "timestamp_granularities")
_TRUE, _FALSE = ("true", "1"), ("false", "0", "")


@dataclass(frozen=True, slots=True)
class SpeechJob:
    """One transcription or translation, read from its form fields (already checked)."""

    task: Task
    language: str | None = None
    response_format: str = "json"
    temperature: float | None = None
    max_tokens: int | None = None
    stream: bool = False
    timestamps: bool = False

    @property
    def needs(self) -> Needs:
        return replace(audio_needs(), max_tokens=self.max_tokens)

    def chat_refusal(self) -> InvalidRequest | None:
        """Why a variant served through chat cannot take this job, or ``None``."""
        chat = "variants without the 'transcription' capability transcribe through chat"
        if self.response_format not in CHAT_FORMATS:
            return InvalidRequest(
                f"response_format '{self.response_format}' is not available here: {chat}, "
                f"which answers {', '.join(CHAT_FORMATS)}.",
                param="response_format",
            )
        if self.timestamps:
            return InvalidRequest(
                f"timestamp_granularities is not available here: {chat}, "
                "which gives no timestamps.",
                param="timestamp_granularities",
            )
        if language_name(self.language) is None:
            return InvalidRequest(
                f"language '{self.language}' is not an ISO-639-1 code the gateway can name "
                f"({chat}); use a code such as 'en' or 'de'.",
                param="language",
                code="unsupported_language",
            )
        return None


def _last(fields: Sequence[tuple[str, str]], *names: str) -> str | None:
    values = [v for k, v in fields if k in names]
    return values[-1] if values else None


def _number(fields: Sequence[tuple[str, str]], name: str, kind: type[float] | type[int]) -> float:
    text = _last(fields, name)
    try:
        value = kind(text) if text is not None else None
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value < (1 if kind is int else 0):
        least = "an integer of at least 1" if kind is int else "a number of at least 0"
        raise InvalidRequest(f"{name} must be {least}.", param=name)
    return value


def _token_cap(fields: Sequence[tuple[str, str]], name: str, limit: int) -> int:
    value = int(_number(fields, name, int))
    if value > limit:
        raise InvalidRequest(
            f"{name} is {value}; at most {limit} is accepted.",
            param=name,
            code="max_tokens_too_large",
        )
    return value


def _max_tokens(fields: Sequence[tuple[str, str]], limit: int) -> int | None:
    """``max_completion_tokens``, else ``max_tokens``; each one sent is checked."""
    names = [n for n in ("max_completion_tokens", "max_tokens") if _last(fields, n)]
    caps = [_token_cap(fields, name, limit) for name in names]
    return caps[0] if caps else None


def _stream(fields: Sequence[tuple[str, str]]) -> bool:
    text = (_last(fields, "stream") or "").lower()
    if text not in _TRUE + _FALSE:
        raise InvalidRequest("stream must be true or false.", param="stream")
    return text in _TRUE


def speech_job(task: Task, fields: Sequence[tuple[str, str]], *, max_tokens: int) -> SpeechJob:
    """The job the form fields describe (400 naming the field when one is invalid)."""
    response_format = _last(fields, "response_format") or "json"
    if response_format not in RESPONSE_FORMATS:
        raise InvalidRequest(
            f"response_format must be one of {', '.join(RESPONSE_FORMATS)}.",
            param="response_format",
        )
    temperature = _number(fields, "temperature", float) if _last(fields, "temperature") else None
    return SpeechJob(
        task=task,
        language=_last(fields, "language") or None,
        response_format=response_format,
        temperature=temperature,
        max_tokens=_max_tokens(fields, max_tokens),
        stream=_stream(fields),
        timestamps=any(k in TIMESTAMP_FIELDS and v for k, v in fields),
    )


def by_endpoint(model: ModelInfo) -> bool:
    """Whether vLLM's transcription endpoint serves the model (else: chat)."""
    return ENDPOINT_CAPABILITY in model.capabilities


def speech_route(found: Route, job: SpeechJob, unhealthy: Collection[str]) -> Route:
    """The routed candidates that may serve the job, the endpoint's first unless named."""
    candidates = found.candidates
    refusal = job.chat_refusal()
    if refusal is not None:
        candidates = tuple(m for m in candidates if by_endpoint(m))
        if not candidates:
            raise refusal
    elif candidates and candidates[0].id != found.requested:
        candidates = tuple(
            sorted(candidates, key=lambda m: (m.id in unhealthy, not by_endpoint(m)))
        )
    return replace(found, candidates=candidates)
