"""Assembling the Batch API of one gateway process from the parts the app already owns."""

from __future__ import annotations

import threading

import anyio

from batch.requests import RequestPlanner
from gateway.batches.charges import BatchCharges
from gateway.batches.clock import Clock
from gateway.batches.engine import ServeEngines
from gateway.batches.files import FileStorage
from gateway.batches.finalize import Finalizer
from gateway.batches.jobs import EngineFactory, JobContext
from gateway.batches.planner import KeyedPlanner
from gateway.batches.service import BatchService
from gateway.batches.store import BatchStore
from gateway.batches.supervisor import Supervisor
from gateway.metrics import GatewayMetrics
from gateway.quotas.backend import RedisQuotaBackend
from gateway.quotas.protocol import ApiKey, KeyStore
from gateway.settings import GatewaySettings
from gateway.upstream.registry import ModelRegistry


def build_batches(
    settings: GatewaySettings,
    backend: RedisQuotaBackend,
    keys: KeyStore,
    registry: ModelRegistry,
    metrics: GatewayMetrics,
    engines: EngineFactory | None = None,
) -> BatchService:
    """The Batch API on the quota Redis; jobs run on ``engines`` (default: ``ServeEngines``)."""
    store = BatchStore(
        backend.redis,
        prefix=settings.quota.key_prefix,
        timeout=max(1.0, settings.quota.timeout * 4),
    )
    storage = FileStorage(settings.batches.files_dir)
    clock = Clock()
    charges = BatchCharges(backend.gate, backend.keys)

    def planner_for(key: ApiKey, endpoint: str) -> RequestPlanner:
        return KeyedPlanner(
            registry.models,
            key=key,
            endpoint=endpoint,
            limits=settings.limits,
            aliases=settings.aliases,
            media=settings.media,
        )

    ctx = JobContext(
        store=store,
        storage=storage,
        keys=backend.keys,
        charges=charges,
        engines=engines or ServeEngines(settings.batches),
        planner_for=planner_for,
        finalizer=Finalizer(store, storage, clock, charges, metrics),
        limiter=anyio.CapacityLimiter(settings.batches.max_concurrent_jobs),
        stopping=threading.Event(),
        clock=clock,
        metrics=metrics,
        stop_check_interval=settings.batches.stop_check_interval,
    )

    def ready() -> bool:
        return any(not m.is_adapter for m in registry.models)

    supervisor = Supervisor(ctx, settings.batches, ready)
    return BatchService(settings.batches, store, storage, backend.gate, supervisor, keys, clock)
