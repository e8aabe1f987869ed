"""The gateway application: ``create_app(settings)`` assembles it, its lifespan owns every client.

Middleware, outermost first: the OpenTelemetry ASGI middleware (server span of each
request, honouring an incoming ``traceparent``), ``RequestMetricsMiddleware`` (counts
every ``/v1`` answer, whatever ended it), ``HeaderAuthMiddleware`` (the API key from the
headers, 401 before any body byte is read) and ``BodyLimitMiddleware`` (413 before the
body is parsed, the body bytes held per process and per unauthenticated client, the
body's deadlines; ``/v1/files`` bounds its uploads itself). Below the app, the HTTP
server's own limits (header and idle deadlines) are ``gateway.server``'s. The tracer
provider is injected (``tracer_provider=``) or built from the ``OTEL_*`` variables, in
which case the lifespan flushes and shuts it down.
The OpenAPI document follows the settings (``gateway.api.openapi``).
Error handlers: ``gateway.http_errors.install_error_handlers`` (the only place errors
become HTTP). The lifespan opens one pooled ``aiohttp`` session to the serving
application, the media fetch client and (with quotas on) the Redis quota backend,
polls the model list in the background, runs the Batch API's jobs (``gateway.batches``:
with the Redis key store, on the engines of ``batch_engines``), and closes all of them on
shutdown after asking running jobs to stop at their next block.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING

import anyio
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider

from gateway import fair_share
from gateway.api import (
    audio,
    embeddings,
    generate,
    health,
    models,
    moderations,
    responses_api,
    usage,
)
from gateway.api.openapi import install_openapi
from gateway.auth import AnonymousKeys, OpenGate
from gateway.batches import routes as batch_routes
from gateway.body_limit import BodyLimitMiddleware
from gateway.dispatch import Dispatcher
from gateway.header_auth import HeaderAuthMiddleware
from gateway.http_errors import install_error_handlers
from gateway.media.fetch import create_fetch_client
from gateway.media.validator import MediaValidator
from gateway.metrics import GatewayMetrics
from gateway.moderation.classifier import Classifier
from gateway.moderation.guard import Guard
from gateway.proxy import Proxy
from gateway.quotas.protocol import KeyStore, QuotaGate
from gateway.settings import GatewaySettings
from gateway.state import GatewayState
from gateway.telemetry import tracing
from gateway.telemetry.http_metrics import RequestMetricsMiddleware
from gateway.upstream.client import create_client
from gateway.upstream.registry import ModelRegistry

if TYPE_CHECKING:
    from batch.engine import BatchEngine
    from gateway.batches.service import BatchService
    from gateway.quotas.backend import RedisQuotaBackend

#: The key store, the gate, their health check, and the Redis backend when there is one.
QuotaParts = tuple[KeyStore, QuotaGate, Callable[[], Awaitable[bool]], "RedisQuotaBackend | None"]


async def _always_healthy() -> bool:
    return True


async def _quota_parts(
    app: FastAPI,
    settings: GatewaySettings,
    stack: AsyncExitStack,
    key_store: KeyStore | None,
    quota_gate: QuotaGate | None,
) -> QuotaParts:
    """The key store and gate: injected, open (quotas off) or the Redis backend."""
    if not settings.quota.enabled:
        return AnonymousKeys(), OpenGate(), _always_healthy, None
    if key_store is not None and quota_gate is not None:
        return key_store, quota_gate, quota_gate.healthy, None
    from gateway.quotas.backend import RedisQuotaBackend

    backend = RedisQuotaBackend.from_settings(settings.quota)
    stack.push_async_callback(backend.aclose)
    if settings.admin_key is not None:
        from gateway.quotas.admin import create_admin_router

        app.include_router(create_admin_router(backend, settings.admin_key.get_secret_value()))
    return key_store or backend.keys, quota_gate or backend.gate, backend.healthy, backend


def _batch_service(
    settings: GatewaySettings,
    quota: QuotaParts,
    registry: ModelRegistry,
    metrics: GatewayMetrics,
    engines: Callable[[], BatchEngine] | None,
) -> BatchService | None:
    """The Batch API, when enabled and the Redis backend holds keys (it keeps its data there)."""
    keys, _, _, backend = quota
    if backend is None or not settings.batches.enabled:
        return None
    from gateway.batches.lifecycle import build_batches

    return build_batches(settings, backend, keys, registry, metrics, engines)


async def _build_state(
    app: FastAPI,
    settings: GatewaySettings,
    metrics: GatewayMetrics,
    stack: AsyncExitStack,
    quota: QuotaParts,
    provider: TracerProvider,
) -> GatewayState:
    client = create_client(
        settings.upstream_url,
        connect_timeout=settings.upstream_connect_timeout,
        read_timeout=settings.upstream_read_timeout,
        pool_size=settings.upstream_pool_size,
        trace_configs=[tracing.client_trace_config(provider)],
    )
    stack.push_async_callback(client.aclose)
    tracer = provider.get_tracer(tracing.TRACER_NAME)
    fetch_client = create_fetch_client(settings.media)
    stack.push_async_callback(fetch_client.aclose)
    registry = ModelRegistry(
        client, interval=settings.model_refresh_interval, cooldown=settings.unhealthy_cooldown
    )
    keys, gate, quota_healthy, backend = quota
    if backend is not None:
        metrics.watch_quota_breaker(lambda: backend.breaker.state_value)
    dispatcher = Dispatcher(
        registry,
        gate,
        metrics,
        quota_timeout=max(1.0, settings.quota.timeout * 4),
        renew_interval=settings.quota.lease_renew_interval,
        retry_after=settings.upstream_retry_after,
        tracer=tracer,
        fair_share=fair_share.from_settings(
            settings.fair_share, lambda: registry.models, settings.upstream_retry_after
        ),
    )
    media = MediaValidator(settings.media, fetch_client, metrics=metrics)
    classifier = Classifier(client)  # one cache of label ids for /v1/moderations and the guard
    guard = Guard(classifier, registry, settings.guard, metrics, settings.aliases)
    proxy = Proxy(settings, client, registry, keys, dispatcher, media, metrics, guard, tracer)
    usage = backend.gate if backend is not None else None
    return GatewayState(settings, metrics, registry, proxy, quota_healthy, classifier, usage)


def create_app(
    settings: GatewaySettings | None = None,
    *,
    key_store: KeyStore | None = None,
    quota_gate: QuotaGate | None = None,
    tracer_provider: TracerProvider | None = None,
    batch_engines: Callable[[], BatchEngine] | None = None,
) -> FastAPI:
    """A gateway app; ``key_store``/``quota_gate`` replace the Redis backend (quotas on).

    ``tracer_provider`` receives the gateway's spans (default: ``OTEL_*`` configured).
    ``batch_engines`` builds the engine of each batch job (default: the Serve
    application's engine deployments, ``gateway.batches.engine.ServeEngines``).
    """
    settings = settings or GatewaySettings()
    metrics = GatewayMetrics()
    provider = tracer_provider or tracing.provider_from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if tracer_provider is None:
                stack.callback(provider.shutdown)
            quota = await _quota_parts(app, settings, stack, key_store, quota_gate)
            state = await _build_state(app, settings, metrics, stack, quota, provider)
            app.state.gateway = state
            batches = _batch_service(settings, quota, state.registry, metrics, batch_engines)
            app.state.batches = batches
            await state.registry.refresh()
            async with anyio.create_task_group() as group:
                group.start_soon(functools.partial(state.registry.run, wait_first=True))
                if batches is not None:
                    group.start_soon(batches.supervisor.run)
                yield
                if batches is not None:
                    await batches.supervisor.stop()
                group.cancel_scope.cancel()

    app = FastAPI(title="gemma-serving gateway", lifespan=lifespan)
    install_error_handlers(app)
    install_openapi(app, settings)
    for router in (
        generate.router,
        embeddings.router,
        moderations.router,
        responses_api.router,
        audio.router,
        models.router,
        usage.router,
        health.router,
        batch_routes.router,
    ):
        app.include_router(router)
    app.add_middleware(
        BodyLimitMiddleware, limits=settings.limits, exempt_paths=(batch_routes.UPLOADS,)
    )
    app.add_middleware(HeaderAuthMiddleware, keys=lambda: _state(app).proxy.keys)
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    tracing.instrument_app(app, provider)
    return app


def _state(app: FastAPI) -> GatewayState:
    state: GatewayState = app.state.gateway
    return state


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory gateway.app:create_app_from_env``."""
    return create_app(GatewaySettings())
