"""The gateway's Prometheus metrics, in a registry owned by one app instance.

Exported on ``GET /metrics`` (names as Prometheus sees them)::

    gateway_requests_total{route, model, capability, status}   every /v1 request answered
    gateway_request_duration_seconds{route, model}             until the last byte
    gateway_time_to_first_token_seconds{route, model}          streams: until the first event
    gateway_tokens_total{model, direction="in"|"out"}          the engine's reported usage
    gateway_quota_rejections_total{reason}                     429/503 refusals by the quota
    gateway_quota_breaker_state                                0 closed, 1 half-open, 2 open
    gateway_upstream_errors_total{model, kind}                 unavailable, timeout, error, ...
    gateway_fallbacks_total{requested, failed}                 routing moved to another model
    gateway_routed_requests_total{requested, served, capability}
    gateway_streams_in_flight{model}                           streams being relayed now
    gateway_stream_errors_total{served}, gateway_client_disconnects_total{served}
    gateway_media_decodes_total{kind}                          image, audio, video parts decoded
    gateway_media_decode_reserved_bytes                        decode memory held by decodes now
    gateway_tenant_requests_total{tenant, model, status}       every /v1 request, by key tenant
    gateway_tenant_tokens_total{tenant, model, direction}      engine usage, by key tenant
    gateway_batches_active{status}                             unfinished batches, at each look
    gateway_batches_finished_total{status}                     batches ended: completed, ...
    gateway_batch_lines_total{outcome="completed"|"failed"}    batch lines journalled
    gateway_guard_checks_total{stage, outcome}                 guard screenings: passed, refused,
                                                               failed (stage: prompt, answer)
    gateway_guard_refusals_total{stage, category}              refused, by category over threshold

``model`` is the model that served the request (``none`` when it was refused before a
model was chosen): a name from ``/v1/models``, never the raw ``model`` field a client sent.
``tenant`` is the API key's tenant (``none`` before a key was authenticated): a name an
operator gave, so its cardinality is the deployment's tenants, never the clients'.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

NO_MODEL = "none"
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class GatewayMetrics:
    """Request, latency, token, quota, upstream and stream metrics of one gateway app."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self._request_metrics()
        self._routing_metrics()
        self._stream_metrics()
        self._health_metrics()
        self._media_metrics()
        self._tenant_metrics()
        self._batch_metrics()
        self._guard_metrics()

    def _guard_metrics(self) -> None:
        self.guard_checks = Counter(
            "gateway_guard_checks",
            "Prompts and answers the content guard screened (stage: prompt, answer), by "
            "outcome: passed, refused, failed (the classifier could not answer).",
            ["stage", "outcome"],
            registry=self.registry,
        )
        self.guard_refusals = Counter(
            "gateway_guard_refusals",
            "Prompts and answers the content guard refused, by each category over its threshold.",
            ["stage", "category"],
            registry=self.registry,
        )

    def _request_metrics(self) -> None:
        self.requests = Counter(
            "gateway_requests",
            "API requests answered, by route, serving model, capability and HTTP status.",
            ["route", "model", "capability", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "gateway_request_duration_seconds",
            "Seconds from request start to the last byte of the answer.",
            ["route", "model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.time_to_first_token = Histogram(
            "gateway_time_to_first_token_seconds",
            "Seconds from request start to the first streamed event (the engine's queue time "
            "and prefill), by the key's priority class.",
            ["route", "model", "priority_class"],
            buckets=TTFT_BUCKETS,
            registry=self.registry,
        )
        self.queue_time = Histogram(
            "gateway_queue_time_seconds",
            "Seconds a request waited for a slot on its model's engine (gateway.fair_share), "
            "by the key's priority class.",
            ["model", "priority_class"],
            buckets=TTFT_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            "gateway_tokens",
            "Tokens the engines reported: direction=in (prompt) or out (completion).",
            ["model", "direction"],
            registry=self.registry,
        )
        self.quota_rejections = Counter(
            "gateway_quota_rejections",
            "Requests the quota refused, by reason (the error code).",
            ["reason"],
            registry=self.registry,
        )
        self.quota_breaker_state = Gauge(
            "gateway_quota_breaker_state",
            "The quota Redis's circuit breaker: 0 closed, 1 half-open (probing), 2 open.",
            registry=self.registry,
        )

    def _routing_metrics(self) -> None:
        self.routed = Counter(
            "gateway_routed_requests",
            "Requests sent upstream, by requested model or alias, serving model and capability.",
            ["requested", "served", "capability"],
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "gateway_fallbacks",
            "Times a model was unavailable and routing moved on to the next candidate.",
            ["requested", "failed"],
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "gateway_upstream_errors",
            "Failed calls to the serving application, by model and kind "
            "(unavailable, timeout, error, status_5xx, stream).",
            ["model", "kind"],
            registry=self.registry,
        )

    def _stream_metrics(self) -> None:
        self.streams_in_flight = Gauge(
            "gateway_streams_in_flight",
            "Streams being relayed to clients right now.",
            ["model"],
            registry=self.registry,
        )
        self.stream_errors = Counter(
            "gateway_stream_errors",
            "Streams that failed after their first byte (the client got an error event).",
            ["served"],
            registry=self.registry,
        )
        self.client_disconnects = Counter(
            "gateway_client_disconnects",
            "Streams the client left before the end (the upstream request was cancelled).",
            ["served"],
            registry=self.registry,
        )

    def _health_metrics(self) -> None:
        self.model_up = Gauge(
            "gateway_model_up",
            "1 when the variant's engine answers and routing may send to it, else 0.",
            ["model"],
            registry=self.registry,
        )
        self.capability_up = Gauge(
            "gateway_capability_up",
            "1 when at least one up variant offers the capability, else 0.",
            ["capability"],
            registry=self.registry,
        )
        self.quota_backend_up = Gauge(
            "gateway_quota_backend_up",
            "1 when the quota store (Redis) answers, else 0 (with quotas off: 1).",
            registry=self.registry,
        )

    def _media_metrics(self) -> None:
        self.media_decodes = Counter(
            "gateway_media_decodes",
            "Media parts decoded (after their header checks and admission), by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.media_decode_reserved = Gauge(
            "gateway_media_decode_reserved_bytes",
            "Decode memory reserved by the media decodes under way now.",
            registry=self.registry,
        )

    def observe_health(
        self, models: Mapping[str, bool], capabilities: Mapping[str, bool], quota: bool
    ) -> None:
        """Set the health gauges; models and capabilities no longer listed are dropped."""
        for gauge, values in ((self.model_up, models), (self.capability_up, capabilities)):
            gauge.clear()
            for name, up in values.items():
                gauge.labels(name).set(1 if up else 0)
        self.quota_backend_up.set(1 if quota else 0)

    def watch_quota_breaker(self, state: Callable[[], float]) -> None:
        """Read ``gateway_quota_breaker_state`` from ``state`` at every scrape."""
        self.quota_breaker_state.set_function(state)

    def watch_decode_memory(self, reserved: Callable[[], float]) -> None:
        """Read ``gateway_media_decode_reserved_bytes`` from ``reserved`` at every scrape."""
        self.media_decode_reserved.set_function(reserved)

    def _tenant_metrics(self) -> None:
        self.tenant_requests = Counter(
            "gateway_tenant_requests",
            "API requests answered, by the key's tenant, serving model and HTTP status.",
            ["tenant", "model", "status"],
            registry=self.registry,
        )
        self.tenant_tokens = Counter(
            "gateway_tenant_tokens",
            "Tokens the engines reported, by the key's tenant, model and direction.",
            ["tenant", "model", "direction"],
            registry=self.registry,
        )

    def _batch_metrics(self) -> None:
        self.batches_active = Gauge(
            "gateway_batches_active",
            "Unfinished batches by status, as the batch supervisor last saw them.",
            ["status"],
            registry=self.registry,
        )
        self.batches_finished = Counter(
            "gateway_batches_finished",
            "Batches this gateway ended, by final status.",
            ["status"],
            registry=self.registry,
        )
        self.batch_lines = Counter(
            "gateway_batch_lines",
            "Batch lines this gateway's jobs journalled, by outcome (completed or failed).",
            ["outcome"],
            registry=self.registry,
        )

    def observe_usage(
        self, model: str, usage: Mapping[str, Any] | None, tenant: str = NO_MODEL
    ) -> None:
        """Count the prompt and completion tokens of an engine ``usage`` object."""
        if not usage:
            return
        for direction, field in (("in", "prompt_tokens"), ("out", "completion_tokens")):
            value = usage.get(field)
            if isinstance(value, int) and value > 0:
                self.tokens.labels(model, direction).inc(value)
                self.tenant_tokens.labels(tenant, model, direction).inc(value)

    def set_active_batches(self, statuses: Mapping[str, int]) -> None:
        """Set ``gateway_batches_active``; statuses no longer seen drop to 0."""
        for status in ("validating", "in_progress", "finalizing", "cancelling"):
            self.batches_active.labels(status).set(statuses.get(status, 0))
