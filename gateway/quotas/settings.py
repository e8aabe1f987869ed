"""Settings for API keys and quotas: the Redis connection, deadlines, breaker and policy."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, Field, model_validator

FailurePolicy = Literal["fail-closed", "fail-open"]

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


class QuotaSettings(BaseModel):
    """How keys and quotas are enforced; nested in the gateway's settings.

    ``window_seconds`` is the "minute" of requests- and tokens-per-minute and
    ``day_seconds`` the "day" of tokens-per-day (days start at multiples of it in
    UTC). Production keeps 60 and 86400; tests shorten them to stay fast.
    """

    enabled: bool = Field(
        default=True, description="Enforce keys and quotas (off: every request passes)."
    )
    redis_url: str = Field(
        default=DEFAULT_REDIS_URL, description="Redis holding keys and counters."
    )
    key_prefix: str = Field(default="gs:", description="Prefix of every Redis key written.")
    timeout: float = Field(
        default=1.0,
        gt=0,
        description="Seconds one key lookup or quota call may take in all: long enough for "
        "a Redis that answers late on busy cores (an outage is cut short by the breaker).",
    )
    connect_timeout: float = Field(
        default=0.5, gt=0, description="Seconds to open a Redis connection."
    )
    breaker_failures: int = Field(
        default=5,
        ge=1,
        description="Quota calls failing in a row that open the circuit breaker: until it "
        "closes, calls fail at once by the failure policy.",
    )
    breaker_cooldown: float = Field(
        default=5.0,
        gt=0,
        description="Seconds the breaker stays open before one call probes Redis again.",
    )
    max_connections: int = Field(
        default=64, ge=1, description="Redis connections per gateway process."
    )
    failure_policy: FailurePolicy = Field(
        default="fail-closed",
        description="When Redis is slow or down: refuse with 503 (fail-closed) or admit "
        "untracked requests from keys this process authenticated recently (fail-open).",
    )
    stale_key_seconds: float = Field(
        default=300.0,
        ge=0,
        description="fail-open only: how long a key authenticated by this process stays "
        "usable while Redis is unreachable.",
    )
    key_cache_seconds: float = Field(
        default=0.0,
        ge=0,
        le=60,
        description="Seconds this process reuses a key it authenticated without reading Redis "
        "again: a revocation or change made elsewhere reaches it within that time "
        "(0: every request reads Redis).",
    )
    lease_ttl: float = Field(
        default=30.0, gt=0, description="Seconds a concurrency lease lives unless renewed."
    )
    lease_renew_interval: float = Field(
        default=10.0, gt=0, description="Seconds between lease renewals while a response streams."
    )
    default_max_tokens: int = Field(
        default=1024,
        ge=1,
        description="Completion cap of a request that sets no max_tokens: sent to the "
        "engine and reserved (completions: at most 16, the API's default).",
    )
    concurrency_retry_after: float = Field(
        default=1.0,
        gt=0,
        description="Longest Retry-After suggested when only concurrency refuses.",
    )
    window_seconds: float = Field(
        default=60.0, gt=0, description="Length of the per-minute window."
    )
    day_seconds: int = Field(default=86400, ge=1, description="Length of the per-day window.")

    @model_validator(mode="after")
    def _renew_before_expiry(self) -> Self:
        if self.lease_renew_interval >= self.lease_ttl:
            raise ValueError("lease_renew_interval must be shorter than lease_ttl")
        return self

    @property
    def fail_open(self) -> bool:
        return self.failure_policy == "fail-open"
