"""Reading admit.lua's reply: the verdict, OpenAI's rate-limit headers and the refusal to raise."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.errors import QuotaExhausted, RateLimited
from gateway.quotas.protocol import Limits

ADMITTED, RATE_LIMITED, DAY_EXHAUSTED, TOO_LARGE = 0, 1, 2, 3

_REASONS = {
    "requests": "requests per minute",
    "tokens": "tokens per minute",
    "tokens_per_day": "tokens per day",
    "concurrency": "concurrent requests",
}


def _text(value: bytes | str | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _seconds(us: int) -> float:
    return us / 1_000_000


def _remaining(value: int) -> int | None:
    return None if value < 0 else value


@dataclass(frozen=True, slots=True)
class Verdict:
    """One admission decision, on Redis's clock (``None`` remaining = unlimited)."""

    status: int
    reasons: tuple[str, ...]
    retry_after: float
    now: float
    day: int
    requests_remaining: int | None
    requests_reset: float
    tokens_remaining: int | None
    tokens_reset: float
    day_tokens_remaining: int | None
    day_reset: float
    leases_held: int

    @classmethod
    def from_reply(cls, reply: Sequence[bytes | str | int]) -> Verdict:
        reasons = _text(reply[1])
        n = [int(_text(v)) for v in reply[2:]]
        return cls(
            status=int(reply[0]),
            reasons=tuple(reasons.split(",")) if reasons else (),
            retry_after=_seconds(n[0]),
            now=_seconds(n[1]),
            day=n[2],
            requests_remaining=_remaining(n[3]),
            requests_reset=_seconds(n[4]),
            tokens_remaining=_remaining(n[5]),
            tokens_reset=_seconds(n[6]),
            day_tokens_remaining=_remaining(n[7]),
            day_reset=_seconds(n[8]),
            leases_held=n[9],
        )


def format_duration(seconds: float) -> str:
    """OpenAI's reset format (Go durations): ``"20ms"``, ``"1s"``, ``"1.5s"``, ``"6m0s"``."""
    ms = max(0, math.ceil(seconds * 1000))
    if ms < 1000:
        return f"{ms}ms" if ms else "0s"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if hours or minutes else "") + f"{secs}s"


def rate_limit_headers(limits: Limits, verdict: Verdict) -> dict[str, str]:
    """OpenAI's ``x-ratelimit-*`` headers for the per-minute limits the key has."""
    headers: dict[str, str] = {}
    rpm, remaining = limits.requests_per_minute, verdict.requests_remaining
    if rpm is not None and remaining is not None:
        headers["x-ratelimit-limit-requests"] = str(rpm)
        headers["x-ratelimit-remaining-requests"] = str(remaining)
        headers["x-ratelimit-reset-requests"] = format_duration(verdict.requests_reset)
    tpm, remaining = limits.tokens_per_minute, verdict.tokens_remaining
    if tpm is not None and remaining is not None:
        headers["x-ratelimit-limit-tokens"] = str(tpm)
        headers["x-ratelimit-remaining-tokens"] = str(remaining)
        headers["x-ratelimit-reset-tokens"] = format_duration(verdict.tokens_reset)
    return headers


def refusal(verdict: Verdict, limits: Limits, reserve: int, headers: dict[str, str]) -> RateLimited:
    """The error for a refused admission, with the real Retry-After."""
    if verdict.status == TOO_LARGE:
        return _too_large(verdict, limits, reserve, headers)
    retry = verdict.retry_after
    if verdict.status == DAY_EXHAUSTED:
        return QuotaExhausted(
            f"Tokens-per-day quota exhausted (limit {limits.tokens_per_day}); "
            f"it resets in {format_duration(retry)}.",
            retry_after=retry,
            headers=headers,
        )
    what = ", ".join(_REASONS.get(r, r) for r in verdict.reasons)
    return RateLimited(
        f"Rate limit reached for {what}. Retry in {format_duration(retry)}.",
        retry_after=retry,
        headers=headers,
    )


def _too_large(
    verdict: Verdict, limits: Limits, reserve: int, headers: dict[str, str]
) -> RateLimited:
    """No wait admits a request larger than a limit: refuse without Retry-After."""
    per_day = verdict.reasons == ("tokens_per_day",)
    limit = limits.tokens_per_day if per_day else limits.tokens_per_minute
    message = (
        f"Request too large: it needs {reserve} tokens (prompt estimate + max_tokens), more "
        f"than the key's {_REASONS['tokens_per_day' if per_day else 'tokens']} limit of "
        f"{limit}. Reduce the prompt or max_tokens."
    )
    error_class = QuotaExhausted if per_day else RateLimited
    error = error_class(message, retry_after=0, code="request_too_large", headers=headers)
    error.headers.pop("retry-after", None)
    error.headers.pop("retry-after-ms", None)
    return error
