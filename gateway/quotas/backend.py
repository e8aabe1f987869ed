"""One gateway process's quota backend: the Redis client, its breaker, the key store, the gate."""

from __future__ import annotations

from redis.asyncio import Redis

from gateway.quotas.breaker import CircuitBreaker
from gateway.quotas.client import create_redis
from gateway.quotas.gate import RedisQuotaGate
from gateway.quotas.settings import QuotaSettings
from gateway.quotas.store import RedisKeyStore


class RedisQuotaBackend:
    """Owns the Redis client that ``keys`` (a ``KeyStore``) and ``gate`` (a ``QuotaGate``) share.

    They share its ``breaker`` too: one Redis, one count of its failures.

    Build it in the app's lifespan with ``from_settings`` and close it with ``aclose``.
    """

    def __init__(self, redis: Redis, settings: QuotaSettings) -> None:
        self.redis = redis
        self.settings = settings
        self.breaker = CircuitBreaker.from_settings(settings)
        self.keys = RedisKeyStore(redis, settings, breaker=self.breaker)
        self.gate = RedisQuotaGate(redis, settings, self.breaker)

    @classmethod
    def from_settings(cls, settings: QuotaSettings) -> RedisQuotaBackend:
        return cls(create_redis(settings), settings)

    async def healthy(self) -> bool:
        """Whether Redis answers within the timeout (for /readyz)."""
        return await self.gate.healthy()

    async def aclose(self) -> None:
        await self.redis.aclose()
