"""Quota enforcement in Redis: each admission, renewal and settlement is one Lua call.

The scripts (admit.lua, renew.lua, settle.lua, charge.lua, usage.lua beside this module; the
first, third and fourth keep the usage ledgers of ledger.lua too) run atomically
on Redis's clock (``TIME``), so every gateway replica sees the same windows and
no two admissions can both take the last slot. redis-py's ``register_script``
sends them with ``EVALSHA`` and loads them again after a Redis restart.

Every call is bounded by ``QuotaSettings.timeout`` and goes through the backend's
``CircuitBreaker`` (``gateway.quotas.breaker``): after a run of failures, calls fail at
once until a probe finds Redis again. When Redis is slow or down, ``admit`` follows the
declared policy: fail-closed raises ``QuotaBackendUnavailable`` (503, ``Retry-After``
the time until the breaker lets a call through); fail-open admits the request untracked.
``renew``, ``settle`` and ``release`` never raise for an unreachable Redis: the
response is already under way, the lease expires on its own, and an unsettled
reservation only over-counts (it stays at the reserved estimate).

``charge`` is the path of work admitted elsewhere (batch jobs): it adds tokens already
spent to the key's tokens-per-day window and says what is left of the day.
``charge_total`` is its idempotent form: given all an account (one batch job) has spent
so far, it adds only what was not charged yet, and records the new total in the same call.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from importlib import resources

from redis.asyncio import Redis

from gateway.errors import QuotaBackendUnavailable
from gateway.quotas.breaker import CircuitBreaker
from gateway.quotas.client import BACKEND_ERRORS
from gateway.quotas.keys import ScopeKeys, scope_for
from gateway.quotas.protocol import Admission, ApiKey, Limits
from gateway.quotas.settings import QuotaSettings
from gateway.quotas.usage import KeyUsage, ScopeReading
from gateway.quotas.verdict import ADMITTED, Verdict, rate_limit_headers, refusal

logger = logging.getLogger(__name__)


def load_script(name: str) -> str:
    return resources.files("gateway.quotas").joinpath(name).read_text(encoding="utf-8")


def _us(seconds: float) -> int:
    return round(seconds * 1_000_000)


def _limit(value: int | None) -> int:
    return -1 if value is None else value


@dataclass(frozen=True, slots=True)
class DayCharge:
    """A scope's tokens-per-day window after a charge (``remaining`` None: unlimited).

    ``charged``: the tokens this charge added to the day.
    """

    used: int
    remaining: int | None
    reset: float
    charged: int = 0

    @property
    def exhausted(self) -> bool:
        return self.remaining is not None and self.remaining <= 0


class RedisQuotaGate:
    """Requests, tokens and concurrency per key, held exactly across replicas; a ``QuotaGate``."""

    def __init__(
        self, redis: Redis, settings: QuotaSettings, breaker: CircuitBreaker | None = None
    ) -> None:
        self._redis = redis
        self._settings = settings
        self.breaker = breaker or CircuitBreaker.from_settings(settings)
        ledger = load_script("ledger.lua")
        self._admit = redis.register_script(ledger + load_script("admit.lua"))
        self._renew = redis.register_script(load_script("renew.lua"))
        self._settle = redis.register_script(ledger + load_script("settle.lua"))
        self._charge = redis.register_script(ledger + load_script("charge.lua"))
        self._usage = redis.register_script(load_script("usage.lua"))
        self._reachable = True

    def _keys(self, scope: str) -> ScopeKeys:
        return ScopeKeys(self._settings.key_prefix, scope)

    def _unavailable(self) -> QuotaBackendUnavailable:
        return self.breaker.unavailable("The quota backend is unavailable.")

    def _note(self, reachable: bool, exc: BaseException | None = None) -> None:
        """Log once when Redis stops answering and once when it answers again."""
        if reachable != self._reachable:
            self._reachable = reachable
            if reachable:
                logger.warning("quota backend reachable again")
            else:
                logger.warning("quota backend unreachable: %s", type(exc).__name__)

    async def admit(self, key: ApiKey, model: str, reserve_tokens: int) -> Admission:
        """Take one request, ``reserve_tokens`` tokens and a concurrency lease, or refuse."""
        scope, limits = scope_for(key, model)
        reserve = max(0, int(reserve_tokens))
        lease_id = secrets.token_hex(12)
        s = self._settings
        args: list[str | int] = [
            lease_id,
            reserve,
            _limit(limits.requests_per_minute),
            _limit(limits.tokens_per_minute),
            _limit(limits.tokens_per_day),
            _limit(limits.max_concurrent),
            _us(s.window_seconds),
            _us(s.day_seconds),
            _us(s.lease_ttl),
            _us(s.concurrency_retry_after),
            model,
        ]
        try:
            call = self._admit(keys=self._keys(scope).admit, args=args)
            reply = await self.breaker.call(call, s.timeout)
        except BACKEND_ERRORS as exc:
            self._note(False, exc)
            if not s.fail_open:
                raise self._unavailable() from exc
            return Admission(key.key_id, model, "", reserve, scope=scope, tracked=False)
        self._note(True)
        verdict = Verdict.from_reply(reply)
        headers = rate_limit_headers(limits, verdict)
        if verdict.status != ADMITTED:
            raise refusal(verdict, limits, reserve, headers)
        return Admission(
            key_id=key.key_id,
            model=model,
            lease_id=lease_id,
            reserved_tokens=reserve,
            headers=headers,
            scope=scope,
            day=verdict.day,
            admitted_at=verdict.now,
        )

    async def renew(self, admission: Admission) -> None:
        """Extend the admission's concurrency lease by ``lease_ttl`` (while it streams)."""
        if not admission.tracked:
            return
        keys = self._keys(admission.scope).renew
        args: list[str | int] = [admission.lease_id, _us(self._settings.lease_ttl)]
        try:
            renewed = await self.breaker.call(
                self._renew(keys=keys, args=args), self._settings.timeout
            )
        except BACKEND_ERRORS as exc:
            self._note(False, exc)
            return
        self._note(True)
        if not renewed:
            logger.info("lease of %s expired before renewal", admission.key_id)

    async def settle(self, admission: Admission, used_tokens: int) -> None:
        """Replace the reservation by the real usage and free the lease (idempotent)."""
        await self._finish(admission, max(0, int(used_tokens)))

    async def release(self, admission: Admission) -> None:
        """Return the whole reservation and free the lease (the request used no tokens)."""
        await self._finish(admission, 0)

    async def _finish(self, admission: Admission, used: int) -> None:
        if not admission.tracked:
            return
        keys = self._keys(admission.scope).settle
        s = self._settings
        args: list[str | int] = [
            admission.lease_id,
            used,
            admission.reserved_tokens,
            admission.day,
            admission.model,
            _us(s.window_seconds),
            _us(s.day_seconds),
        ]
        try:
            await self.breaker.call(self._settle(keys=keys, args=args), self._settings.timeout)
        except BACKEND_ERRORS as exc:
            self._note(False, exc)
            logger.warning("could not settle an admission of %s", admission.key_id)
            return
        self._note(True)

    async def charge(self, key: ApiKey, model: str, tokens: int) -> DayCharge:
        """Add ``tokens`` spent on ``model`` to the key's day (0 only reads it), atomically.

        Raises ``QuotaBackendUnavailable`` when Redis does not answer: the caller decides
        whether the work may go on uncharged.
        """
        scope, limits = scope_for(key, model)
        s = self._settings
        args: list[str | int] = [
            max(0, int(tokens)),
            _limit(limits.tokens_per_day),
            _us(s.day_seconds),
            0,
            model,
            _us(s.window_seconds),
        ]
        return await self._charge_call(self._keys(scope).charge, args)

    async def charge_total(
        self, key: ApiKey, model: str, account: str, total: int, keep: float
    ) -> DayCharge:
        """Bring what ``account`` was charged on ``model``'s scope up to ``total``, atomically.

        ``total`` is everything ``account`` (a batch job's id) has spent in the scope so far.
        Only what it exceeds the account's record by is added to the key's day, and the
        record becomes ``total`` in the same Lua call: charging a total twice adds it once,
        and a smaller total adds nothing. The record lives beside the day counter (the
        scope's Cluster slot) until ``keep`` seconds after its last charge. Raises as
        ``charge`` does.
        """
        scope, limits = scope_for(key, model)
        s = self._settings
        args: list[str | int] = [
            max(0, int(total)),
            _limit(limits.tokens_per_day),
            _us(s.day_seconds),
            max(1, round(keep * 1000)),
            model,
            _us(s.window_seconds),
        ]
        return await self._charge_call(self._keys(scope).charged(account), args)

    async def _charge_call(self, keys: list[str], args: list[str | int]) -> DayCharge:
        try:
            reply = await self.breaker.call(
                self._charge(keys=keys, args=args), self._settings.timeout
            )
        except BACKEND_ERRORS as exc:
            self._note(False, exc)
            raise self._unavailable() from exc
        self._note(True)
        used, remaining, reset_us, charged = (int(v) for v in reply)
        return DayCharge(used, None if remaining < 0 else remaining, reset_us / 1_000_000, charged)

    async def usage(self, key: ApiKey) -> KeyUsage:
        """What ``key`` has used: its scopes' windows and ledgers, one Lua call per scope.

        Raises ``QuotaBackendUnavailable`` when Redis does not answer.
        """
        s = self._settings
        scopes: list[tuple[str | None, Limits]] = [(None, key.limits)]
        scopes += sorted(key.model_limits.items())
        args = [_us(s.window_seconds), _us(s.day_seconds)]
        readings = []
        for model, limits in scopes:
            scope = key.key_id if model is None else scope_for(key, model)[0]
            try:
                reply = await self.breaker.call(
                    self._usage(keys=self._keys(scope).usage, args=args), s.timeout
                )
            except BACKEND_ERRORS as exc:
                self._note(False, exc)
                raise self._unavailable() from exc
            self._note(True)
            readings.append((model, limits, ScopeReading.from_reply(reply)))
        return KeyUsage.combine(key, readings, s.window_seconds, s.day_seconds)

    async def healthy(self) -> bool:
        """Whether Redis answers a PING within the timeout (an open breaker: no)."""
        try:
            await self.breaker.call(self._redis.ping(), self._settings.timeout)
        except BACKEND_ERRORS as exc:
            self._note(False, exc)
            return False
        self._note(True)
        return True
