"""API keys in Redis, filed under the SHA-256 of their secret.

A secret is ``gsk-`` followed by 43 URL-safe characters from ``secrets`` (256
bits). It is shown once, when the key is created, and never stored, logged or
kept on an ``ApiKey``: Redis holds only its SHA-256. Authentication hashes the
presented secret and reads the record filed under that hash, so finding a key is
one ``GET`` whose cost does not depend on how much of the secret is right - a
hash lookup is a constant-time way to find a key, and no stored value is ever
compared with the secret byte by byte.

Layout (all under one hash tag, so a Redis Cluster keeps the key store on one slot)::

    {prefix}{keys}:h:<sha256>  STRING  the key's JSON record (``records``)
    {prefix}{keys}:id:<key id> STRING  the sha256 the key is filed under
    {prefix}{keys}:ids         ZSET    key id -> creation time

Revocation marks the record; a revoked key never authenticates again. By default
every authentication reads Redis, so a revocation holds at once on every replica.
With ``key_cache_seconds`` set, a process reuses a key it read within that many
seconds, saving the request's key lookup round trip: a revocation or limit change
made through this process holds here at once, one made elsewhere within
``key_cache_seconds``. The other in-process memory is the fail-open fallback: while
Redis is unreachable and the policy is fail-open, a key this process authenticated within
``stale_key_seconds`` still authenticates. A key revoked just before an outage can
therefore pass for at most ``stale_key_seconds`` after its last successful
authentication in that process, and only while Redis cannot be reached.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import WatchError

from gateway.errors import AuthenticationFailed, NotFound, QuotaBackendUnavailable
from gateway.moderation.key_policy import GuardPolicy
from gateway.priority import DEFAULT_CLASS, PriorityClass
from gateway.quotas import records
from gateway.quotas.breaker import CircuitBreaker
from gateway.quotas.client import BACKEND_ERRORS
from gateway.quotas.protocol import ApiKey, Limits
from gateway.quotas.settings import QuotaSettings

logger = logging.getLogger(__name__)

SECRET_PREFIX = "gsk-"
_MAX_SECRET_LENGTH = 256
_STALE_KEYS_KEPT = 10_000
_INVALID = "Invalid API key. Create one with `gemma-serving keys create`."


def new_secret() -> str:
    """A fresh random secret: ``gsk-`` and 256 bits from ``secrets``."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def secret_hash(secret: str) -> str:
    """The SHA-256 (hex) a key is filed under."""
    return hashlib.sha256(secret.encode()).hexdigest()


def looks_like_secret(secret: str) -> bool:
    return secret.startswith(SECRET_PREFIX) and 32 <= len(secret) <= _MAX_SECRET_LENGTH


class _RecentKeys:
    """Keys this process authenticated recently, each usable for ``max_age`` seconds."""

    def __init__(self, max_age: float, clock: Callable[[], float]) -> None:
        self._max_age = max_age
        self._clock = clock
        self._seen: OrderedDict[str, tuple[ApiKey, float]] = OrderedDict()

    def remember(self, digest: str, key: ApiKey) -> None:
        self._seen[digest] = (key, self._clock())
        self._seen.move_to_end(digest)
        while len(self._seen) > _STALE_KEYS_KEPT:
            self._seen.popitem(last=False)

    def forget(self, digest: str) -> None:
        self._seen.pop(digest, None)

    def recall(self, digest: str) -> ApiKey | None:
        entry = self._seen.get(digest)
        if entry is None or self._clock() - entry[1] > self._max_age:
            return None
        return entry[0]


class RedisKeyStore:
    """Create, find, revoke and authenticate API keys; implements ``KeyStore``."""

    def __init__(
        self,
        redis: Redis,
        settings: QuotaSettings,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self._redis = redis
        self._settings = settings
        self._breaker = breaker or CircuitBreaker.from_settings(settings)
        self._clock = clock
        self._stale = _RecentKeys(settings.stale_key_seconds, monotonic)
        self._cache = _RecentKeys(settings.key_cache_seconds, monotonic)
        self._base = f"{settings.key_prefix}{{keys}}:"

    def _record(self, digest: str) -> str:
        return f"{self._base}h:{digest}"

    def _by_id(self, key_id: str) -> str:
        return f"{self._base}id:{key_id}"

    @property
    def _ids(self) -> str:
        return f"{self._base}ids"

    async def _call(self, call: Any) -> Any:
        try:
            return await self._breaker.call(call, self._settings.timeout)
        except WatchError:
            raise
        except BACKEND_ERRORS as exc:
            raise self._breaker.unavailable("The key store is unavailable.") from exc

    async def authenticate(self, secret: str) -> ApiKey:
        """The key for a presented secret; ``AuthenticationFailed`` if unknown or revoked."""
        if not looks_like_secret(secret):
            raise AuthenticationFailed(_INVALID)
        digest = secret_hash(secret)
        if self._settings.key_cache_seconds and (cached := self._cache.recall(digest)):
            return cached
        try:
            call = self._redis.get(self._record(digest))
            raw = await self._breaker.call(call, self._settings.timeout)
        except BACKEND_ERRORS as exc:
            return self._while_unreachable(digest, exc)
        key = None if raw is None else records.loads(raw)
        if key is None or key.revoked:
            self._stale.forget(digest)
            raise AuthenticationFailed(_INVALID)
        if self._settings.fail_open:
            self._stale.remember(digest, key)
        if self._settings.key_cache_seconds:
            self._cache.remember(digest, key)
        return key

    def _while_unreachable(self, digest: str, exc: BaseException) -> ApiKey:
        key = self._stale.recall(digest) if self._settings.fail_open else None
        if key is None:
            logger.warning("key store unreachable: %s", type(exc).__name__)
            raise self._breaker.unavailable("The key store is unavailable.") from exc
        return key

    async def is_filed(self, secret: str) -> bool:
        """Whether a secret belongs to a stored key, revoked or not."""
        found = await self._call(self._redis.exists(self._record(secret_hash(secret))))
        return bool(found)

    async def create(
        self,
        *,
        tenant: str,
        name: str = "",
        limits: Limits | None = None,
        model_limits: Mapping[str, Limits] | None = None,
        allowed_models: Iterable[str] | None = None,
        allowed_capabilities: Iterable[str] | None = None,
        priority_class: PriorityClass = DEFAULT_CLASS,
        weight: float = 1.0,
        guard: GuardPolicy | None = None,
        secret: str | None = None,
    ) -> tuple[str, ApiKey]:
        """A new key and its secret (shown once: only its hash is stored).

        ``secret`` files a given secret instead of a fresh one (development keys).
        """
        if not tenant:
            raise ValueError("tenant must not be empty")
        if not weight > 0:
            raise ValueError("weight must be positive")
        secret = secret or new_secret()
        if not looks_like_secret(secret):
            raise ValueError(f"a secret starts with {SECRET_PREFIX!r} and has 32-256 characters")
        key = ApiKey(
            key_id="key_" + secrets.token_hex(12),
            tenant=tenant,
            name=name,
            hint=secret[-4:],
            created_at=self._clock(),
            limits=limits or Limits(),
            model_limits=dict(model_limits or {}),
            allowed_models=None if allowed_models is None else frozenset(allowed_models),
            allowed_capabilities=(
                None if allowed_capabilities is None else frozenset(allowed_capabilities)
            ),
            priority_class=priority_class,
            weight=weight,
            guard=guard or GuardPolicy(),
        )
        digest = secret_hash(secret)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._record(digest), records.dumps(key), nx=True)
            pipe.set(self._by_id(key.key_id), digest)
            pipe.zadd(self._ids, {key.key_id: key.created_at})
            stored = await self._call(pipe.execute())
        if not stored[0]:
            raise ValueError("this secret is already filed under another key")
        logger.info("created API key %s for tenant %s", key.key_id, tenant)
        return secret, key

    async def _digest(self, key_id: str) -> str:
        digest = await self._call(self._redis.get(self._by_id(key_id)))
        if digest is None:
            raise NotFound(f"No API key with id {key_id!r}.", param="key_id")
        return digest.decode() if isinstance(digest, bytes) else str(digest)

    async def get(self, key_id: str) -> ApiKey:
        """The key with this id (revoked ones too); ``NotFound`` otherwise."""
        raw = await self._call(self._redis.get(self._record(await self._digest(key_id))))
        if raw is None:
            raise NotFound(f"No API key with id {key_id!r}.", param="key_id")
        return records.loads(raw)

    async def list(self, *, tenant: str | None = None) -> Sequence[ApiKey]:
        """Every key, oldest first, optionally of one tenant."""
        ids = await self._call(self._redis.zrange(self._ids, 0, -1))
        if not ids:
            return []
        digests = await self._call(self._redis.mget([self._by_id(i.decode()) for i in ids]))
        names = [self._record(d.decode()) for d in digests if d is not None]
        raws = await self._call(self._redis.mget(names)) if names else []
        keys = [records.loads(raw) for raw in raws if raw is not None]
        return [k for k in keys if tenant is None or k.tenant == tenant]

    async def _update(self, key_id: str, change: Callable[[ApiKey], ApiKey]) -> ApiKey:
        """Apply ``change`` to a stored key atomically (optimistic, retried on conflict)."""
        digest = await self._digest(key_id)
        record = self._record(digest)
        for _ in range(10):
            async with self._redis.pipeline(transaction=True) as pipe:
                try:
                    await self._call(pipe.watch(record))
                    raw = await self._call(pipe.get(record))
                    if raw is None:
                        raise NotFound(f"No API key with id {key_id!r}.", param="key_id")
                    key = change(records.loads(raw))
                    pipe.multi()
                    pipe.set(record, records.dumps(key), xx=True)
                    await self._call(pipe.execute())
                    self._cache.forget(digest)  # a change made here holds here at once
                    return key
                except WatchError:
                    continue
        raise QuotaBackendUnavailable("The key store is too busy to update this key; retry.")

    async def revoke(self, key_id: str) -> ApiKey:
        """Refuse the key from now on (on every replica); revoking twice is harmless."""
        now = self._clock()
        key = await self._update(key_id, lambda k: k if k.revoked else replace(k, revoked_at=now))
        logger.info("revoked API key %s", key_id)
        return key

    async def set_limits(
        self,
        key_id: str,
        limits: Limits,
        model_limits: Mapping[str, Limits] | None = None,
        priority_class: PriorityClass | None = None,
        weight: float | None = None,
    ) -> ApiKey:
        """Replace the key's limits (and, when given, its per-model overrides, class, weight)."""
        if weight is not None and not weight > 0:
            raise ValueError("weight must be positive")

        def change(key: ApiKey) -> ApiKey:
            return replace(
                key,
                limits=limits,
                model_limits=key.model_limits if model_limits is None else dict(model_limits),
                priority_class=priority_class or key.priority_class,
                weight=key.weight if weight is None else weight,
            )

        key = await self._update(key_id, change)
        logger.info("changed limits of API key %s", key_id)
        return key

    async def set_guard(self, key_id: str, guard: GuardPolicy) -> ApiKey:
        """Replace the key's guard (``gateway.moderation.key_policy``)."""
        key = await self._update(key_id, lambda key: replace(key, guard=guard))
        logger.info("changed the guard of API key %s to %s", key_id, guard.mode.value)
        return key
