"""One gateway process's quota backend: the Redis client, the key store and the gate."""

from __future__ import annotations

from redis.asyncio import Redis

from gateway.quotas.client import create_redis
from gateway.quotas.gate import RedisQuotaGate
from gateway.quotas.settings import QuotaSettings
from gateway.quotas.store import RedisKeyStore


class RedisQuotaBackend:
    """Owns the Redis client that ``keys`` (a ``KeyStore``) and ``gate`` (a ``QuotaGate``) share.

    Build it in the app's lifespan with ``from_settings`` and close it with ``aclose``.
    """

    def __init__(self, redis: Redis, settings: QuotaSettings) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = RedisKeyStore(redis, settings)
        self.gate = RedisQuotaGate(redis, settings)

    @classmethod
    def from_settings(cls, settings: QuotaSettings) -> RedisQuotaBackend:
        return cls(create_redis(settings), settings)

    async def healthy(self) -> bool:
        """Whether Redis answers within the timeout (for /readyz)."""
        return await self.gate.healthy()

    async def aclose(self) -> None:
        await self.redis.aclose()
