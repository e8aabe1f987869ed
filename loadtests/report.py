"""Timings as locust request events, so locust's UI, CSV and percentiles show them.

One row per (request_type, capability):

    E2E        end-to-end latency in ms; failures land here; length = output tokens
    TTFT       time to first token, ms (streamed capabilities)
    TPOT       time per output token after the first, ms
    TOKENS/S   output tokens per second of one request (the "ms" columns hold tokens/s)
    QUOTA_429  refusals a quota meant (429 rate_limit_exceeded / insufficient_quota);
               counted apart, never as failures
"""

from __future__ import annotations

from typing import Any, Protocol

from loadtests.stream import Timing

QUOTA_ERROR_TYPES = frozenset({"rate_limit_exceeded", "insufficient_quota"})


class RequestEvent(Protocol):
    """locust's ``environment.events.request``."""

    def fire(self, **kwargs: Any) -> None: ...


def is_quota_refusal(status: int, body: Any) -> bool:
    """A 429 whose OpenAI error body says a rate limit or quota refused it."""
    if status != 429 or not isinstance(body, dict):
        return False
    error = body.get("error")
    return isinstance(error, dict) and error.get("type") in QUOTA_ERROR_TYPES


class Reporter:
    """Fires the rows above for one capability's requests."""

    def __init__(self, event: RequestEvent) -> None:
        self._event = event

    def _fire(
        self, kind: str, name: str, value: float, length: int = 0, exc: Exception | None = None
    ) -> None:
        self._event.fire(
            request_type=kind,
            name=name,
            response_time=value,
            response_length=length,
            exception=exc,
            context={},
        )

    def success(self, name: str, timing: Timing) -> None:
        self._fire("E2E", name, timing.e2e * 1000, timing.output_tokens)
        if timing.ttft is not None:
            self._fire("TTFT", name, timing.ttft * 1000)
        if timing.tpot is not None:
            self._fire("TPOT", name, timing.tpot * 1000)
        if timing.output_tokens:
            self._fire("TOKENS/S", name, timing.tokens_per_second)

    def failure(self, name: str, seconds: float, exc: Exception) -> None:
        self._fire("E2E", name, seconds * 1000, exc=exc)

    def quota_refusal(self, name: str, seconds: float) -> None:
        self._fire("QUOTA_429", name, seconds * 1000)
