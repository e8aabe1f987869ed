"""An API key with no limits for a benchmark run, filed under a prefix of its own."""

from __future__ import annotations

from redis.asyncio import Redis

from gateway.priority import DEFAULT_CLASS, PriorityClass
from gateway.quotas.backend import RedisQuotaBackend
from gateway.quotas.settings import QuotaSettings


class QuotaKey:
    """Creates one key under ``prefix`` and deletes every Redis key under it afterwards."""

    def __init__(self, redis_url: str, prefix: str, *, enabled: bool = True) -> None:
        self.settings = QuotaSettings.model_validate({"redis_url": redis_url, "key_prefix": prefix})
        self.enabled = enabled

    async def create(
        self, tenant: str = "benchmark", priority_class: PriorityClass = DEFAULT_CLASS
    ) -> str | None:
        """The secret of a fresh key, or ``None`` with quotas off."""
        if not self.enabled:
            return None
        backend = RedisQuotaBackend.from_settings(self.settings)
        try:
            secret, _ = await backend.keys.create(
                tenant=tenant, name="benchmark", priority_class=priority_class
            )
        finally:
            await backend.aclose()
        return secret

    async def delete_all(self) -> int:
        if not self.enabled:
            return 0
        redis = Redis.from_url(self.settings.redis_url)
        try:
            names = [n async for n in redis.scan_iter(match=self.settings.key_prefix + "*")]
            return int(await redis.delete(*names)) if names else 0
        finally:
            await redis.aclose()
