"""The seams between the request path and authentication / quota enforcement.

The request path calls, in order:

1. ``KeyStore.authenticate(secret)`` -> ``ApiKey`` (raises ``AuthenticationFailed``);
2. ``QuotaGate.admit(key, model, reserve_tokens)`` -> ``Admission`` (raises
   ``RateLimited`` / ``QuotaExhausted`` / ``QuotaBackendUnavailable``) - one Redis
   round trip that checks and takes requests-per-minute, the token reservation
   (prompt estimate + max_tokens) and a concurrency lease together;
3. while the request is in flight, ``renew(admission)`` every ``lease_renew_interval``
   (``gateway.ticket.Ticket.renewing`` does this in the gateway);
4. exactly one of ``settle(admission, used_tokens)`` (the engine's real usage,
   also for streams the client abandoned) or ``release(admission)`` (the request
   failed before using tokens). Both free the concurrency lease; calling either
   twice is harmless. Shield the call from cancellation: a client disconnect
   cancels the request's task, and the reservation must still be settled.

All methods are coroutines and must be safe to call concurrently from many tasks
and many gateway processes: the state lives in Redis, never in process memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from gateway.moderation.key_policy import GuardPolicy
from gateway.priority import DEFAULT_CLASS, PriorityClass

if TYPE_CHECKING:
    from gateway.quotas.usage import KeyUsage


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-key (or per-key-per-model) limits; ``None`` means unlimited."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    tokens_per_day: int | None = None
    max_concurrent: int | None = None


@dataclass(frozen=True, slots=True)
class ApiKey:
    """What the gateway knows about an authenticated key (never the secret).

    ``allowed_models`` / ``allowed_capabilities`` of ``None`` allow everything;
    ``hint`` is the secret's last four characters, for people telling keys apart;
    ``priority_class`` orders its requests at the engines (``gateway.priority``) and
    ``weight`` is its tenant's share of a saturated model (``gateway.fair_share``);
    ``guard`` says whether its prompts and answers are screened (``gateway.moderation``).
    """

    key_id: str
    tenant: str
    limits: Limits = Limits()
    model_limits: Mapping[str, Limits] = field(default_factory=dict)
    allowed_models: frozenset[str] | None = None
    allowed_capabilities: frozenset[str] | None = None
    name: str = ""
    hint: str = ""
    created_at: float = 0.0
    revoked_at: float | None = None
    priority_class: PriorityClass = DEFAULT_CLASS
    weight: float = 1.0
    guard: GuardPolicy = field(default_factory=GuardPolicy)

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def allows_model(self, model: str) -> bool:
        return self.allowed_models is None or model in self.allowed_models

    def allows_capabilities(self, capabilities: Iterable[str]) -> bool:
        allowed = self.allowed_capabilities
        return allowed is None or all(c in allowed for c in capabilities)

    def limits_for(self, model: str) -> Limits:
        return self.model_limits.get(model, self.limits)


@dataclass(frozen=True, slots=True)
class Admission:
    """A granted admission: the reservation and lease to settle or release.

    ``scope`` names the counters charged (see ``gateway.quotas.keys``) and ``day``
    the tokens-per-day window reserved in, ``admitted_at`` Redis's clock (Unix
    seconds) at admission. ``tracked`` is false when the backend
    was unreachable and the fail-open policy let the request through uncounted;
    renewing, settling or releasing such an admission does nothing.
    """

    key_id: str
    model: str
    lease_id: str
    reserved_tokens: int
    headers: Mapping[str, str] = field(default_factory=dict)
    scope: str = ""
    day: int = 0
    admitted_at: float = 0.0
    tracked: bool = True


class KeyStore(Protocol):
    async def authenticate(self, secret: str) -> ApiKey:
        """Return the key for a presented secret or raise ``AuthenticationFailed``."""
        ...


class QuotaGate(Protocol):
    async def admit(self, key: ApiKey, model: str, reserve_tokens: int) -> Admission: ...

    async def renew(self, admission: Admission) -> None: ...

    async def settle(self, admission: Admission, used_tokens: int) -> None: ...

    async def release(self, admission: Admission) -> None: ...

    async def healthy(self) -> bool:
        """Whether the backing store answers within its timeout (for /readyz)."""
        ...


class UsageReader(Protocol):
    async def usage(self, key: ApiKey) -> KeyUsage:
        """What ``key`` has used in the current minute and day, per model and per limit."""
        ...
