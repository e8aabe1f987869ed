"""Everything one app instance owns, built by the lifespan and kept on ``app.state.gateway``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request

from gateway.metrics import GatewayMetrics
from gateway.moderation.classifier import Classifier
from gateway.proxy import Proxy
from gateway.quotas.protocol import UsageReader
from gateway.settings import GatewaySettings
from gateway.upstream.registry import ModelRegistry


@dataclass
class GatewayState:
    settings: GatewaySettings
    metrics: GatewayMetrics
    registry: ModelRegistry
    proxy: Proxy
    quota_healthy: Callable[[], Awaitable[bool]]
    classifier: Classifier
    usage: UsageReader | None = None


async def gateway_state(request: Request) -> GatewayState:
    """The app's state; ``async`` so that FastAPI calls it inline, not in its thread pool."""
    state: GatewayState = request.app.state.gateway
    return state
