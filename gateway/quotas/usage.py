"""What one key has used: per model in the current minute and day, and against each limit.

Two sources, both read by usage.lua in one call per scope (``gateway.quotas.keys``):

- the **ledgers** (ledger.lua), kept for every key whatever its limits: requests admitted
  and tokens charged per model in the current minute (``window_seconds`` long, counted
  from the Unix epoch) and the current day (``day_seconds``, UTC days by default). Tokens
  count when a request settles (in the minute it ends, on the day it was admitted) and
  when a batch job charges its answers (``batch_tokens`` is that part);
- the **quota windows** (admit.lua's figures): for each scope, the key's own limits and
  each per-model override, what is used, what remains and when the window is empty again.
  The request and token windows are sliding minutes, kept only while their limit is set:
  an unset limit shows ``limit`` and ``remaining`` null and what the ledgers hold.

``KeyUsage.to_dict`` is the body of ``GET /v1/usage`` and ``/admin/keys/{id}/usage``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.quotas.protocol import ApiKey, Limits

#: Ledger field prefixes (ledger.lua): requests, tokens, batch tokens.
_COUNTERS = {"r": "requests", "t": "tokens", "b": "batch_tokens"}


@dataclass(frozen=True, slots=True)
class Counts:
    requests: int = 0
    tokens: int = 0
    batch_tokens: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.requests + other.requests,
            self.tokens + other.tokens,
            self.batch_tokens + other.batch_tokens,
        )


@dataclass(frozen=True, slots=True)
class Window:
    """One limit's window: ``limit`` None is unlimited (``remaining`` None too)."""

    limit: int | None
    used: int
    resets_in: float

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.used)

    def to_dict(self) -> dict[str, Any]:
        return {
            "limit": self.limit,
            "used": self.used,
            "remaining": self.remaining,
            "resets_in_seconds": round(self.resets_in, 3),
        }


@dataclass(frozen=True, slots=True)
class ScopeReading:
    """usage.lua's reply for one scope, in seconds and counts."""

    now: float
    minute: int
    day: int
    requests: int
    requests_reset: float
    tokens: int
    tokens_reset: float
    tokens_today: int
    held: int
    minute_ledger: dict[str, Counts]
    day_ledger: dict[str, Counts]

    @classmethod
    def from_reply(cls, reply: Sequence[Any]) -> ScopeReading:
        now, minute, day, requests, requests_reset, tokens, tokens_reset, today, held = (
            int(v) for v in reply[:9]
        )
        return cls(
            now=now / 1_000_000,
            minute=minute,
            day=day,
            requests=requests,
            requests_reset=requests_reset / 1_000_000,
            tokens=tokens,
            tokens_reset=tokens_reset / 1_000_000,
            tokens_today=today,
            held=held,
            minute_ledger=_ledger(reply[9]),
            day_ledger=_ledger(reply[10]),
        )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _ledger(flat: Sequence[Any]) -> dict[str, Counts]:
    """A ledger's HGETALL (``r:<model>`` -> n, ...) as counts per model."""
    values: dict[str, dict[str, int]] = {}
    for name, value in zip(flat[::2], flat[1::2], strict=True):
        kind, _, model = _text(name).partition(":")
        if kind in _COUNTERS and model:
            values.setdefault(model, {})[_COUNTERS[kind]] = int(value)
    return {model: Counts(**counts) for model, counts in values.items()}


@dataclass(frozen=True, slots=True)
class ScopeUsage:
    """A scope's limits against its use; ``model`` None: the key's own limits."""

    model: str | None
    requests_per_minute: Window
    tokens_per_minute: Window
    tokens_per_day: Window
    max_concurrent: Window

    @classmethod
    def read(
        cls, model: str | None, limits: Limits, r: ScopeReading, minute_end: float, day_end: float
    ) -> ScopeUsage:
        """A limit that is set reads its window; one that is not, the scope's ledgers."""
        minute = sum(r.minute_ledger.values(), Counts())
        today = sum(r.day_ledger.values(), Counts())
        rpm, tpm, tpd = limits.requests_per_minute, limits.tokens_per_minute, limits.tokens_per_day
        ledger_reset = minute_end - r.now
        return cls(
            model=model,
            requests_per_minute=(
                Window(rpm, r.requests, r.requests_reset)
                if rpm is not None
                else Window(None, minute.requests, ledger_reset)
            ),
            tokens_per_minute=(
                Window(tpm, r.tokens, r.tokens_reset)
                if tpm is not None
                else Window(None, minute.tokens, ledger_reset)
            ),
            tokens_per_day=Window(
                tpd, r.tokens_today if tpd is not None else today.tokens, day_end - r.now
            ),
            max_concurrent=Window(limits.max_concurrent, r.held, 0.0),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "requests_per_minute": self.requests_per_minute.to_dict(),
            "tokens_per_minute": self.tokens_per_minute.to_dict(),
            "tokens_per_day": self.tokens_per_day.to_dict(),
            "max_concurrent": self.max_concurrent.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class KeyUsage:
    """A key's usage now (Redis's clock, Unix seconds)."""

    key: ApiKey
    now: float
    minute: tuple[float, float]
    day: tuple[float, float]
    models: dict[str, tuple[Counts, Counts]] = field(default_factory=dict)
    limits: list[ScopeUsage] = field(default_factory=list)

    @classmethod
    def combine(
        cls,
        key: ApiKey,
        readings: Sequence[tuple[str | None, Limits, ScopeReading]],
        window: float,
        day_length: float,
    ) -> KeyUsage:
        """One key's usage from the readings of its scopes (its own first)."""
        first = readings[0][2]
        day = (first.day * day_length, (first.day + 1) * day_length)
        minute = (first.minute * window, (first.minute + 1) * window)
        models: dict[str, tuple[Counts, Counts]] = {}
        for _, _, r in readings:
            for model in sorted(set(r.minute_ledger) | set(r.day_ledger)):
                m, d = models.get(model, (Counts(), Counts()))
                models[model] = (
                    m + r.minute_ledger.get(model, Counts()),
                    d + r.day_ledger.get(model, Counts()),
                )
        limits = [ScopeUsage.read(m, lim, r, minute[1], day[1]) for m, lim, r in readings]
        return cls(key, first.now, minute, day, dict(sorted(models.items())), limits)

    def to_dict(self) -> dict[str, Any]:
        def counts(c: Counts) -> dict[str, int]:
            return {"requests": c.requests, "tokens": c.tokens, "batch_tokens": c.batch_tokens}

        return {
            "object": "usage",
            "key_id": self.key.key_id,
            "tenant": self.key.tenant,
            "now": round(self.now, 3),
            "minute": {"start": self.minute[0], "end": self.minute[1]},
            "day": {"start": self.day[0], "end": self.day[1]},
            "data": [
                {"model": model, "minute": counts(m), "day": counts(d)}
                for model, (m, d) in self.models.items()
            ],
            "limits": [scope.to_dict() for scope in self.limits],
        }
