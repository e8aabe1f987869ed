"""Span names and attributes of the request path, and the helpers that set them.

Spans of one request (the server span comes from the FastAPI instrumentation, the
upstream HTTP span from the aiohttp client instrumentation)::

    POST /v1/chat/completions                      server span (honours traceparent)
    ├── gateway.auth                               API key check
    ├── gateway.route                              capabilities, candidates
    ├── gateway.upstream                           chosen model, fallback
    │   ├── gateway.quota.admit                    one per candidate tried
    │   ├── gateway.media                          media checks, once, after the first admission
    │   └── POST                                   aiohttp client span -> Ray Serve -> vLLM
    └── gateway.quota.settle | gateway.quota.release

Attributes hold ids, counts, model names and timings only: never prompt or completion
text, media or keys. ``content_hash`` is the one view of the content, and only when
``TelemetrySettings.record_content_hash`` asks for it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from opentelemetry.trace import Span

AUTH = "gateway.auth"
ROUTE = "gateway.route"
MEDIA = "gateway.media"
GUARD = "gateway.guard"
UPSTREAM = "gateway.upstream"
QUOTA_ADMIT = "gateway.quota.admit"
FAIR_SHARE = "gateway.fair_share.wait"
QUOTA_SETTLE = "gateway.quota.settle"
QUOTA_RELEASE = "gateway.quota.release"

REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
CAPABILITIES = "gateway.route.capabilities"
CANDIDATES = "gateway.route.candidates"
CHOSEN = "gateway.route.chosen"
FALLBACK = "gateway.route.fallback"
FAILED = "gateway.route.failed"
KEY_ID = "gateway.key_id"
QUOTA_TOKENS = "gateway.quota.tokens"
CONTENT_HASH = "gateway.content.sha256"
STREAM = "gateway.stream"


def content_hash(payload: Mapping[str, Any]) -> str:
    """SHA-256 of the request's content (``messages`` or ``prompt``), canonical JSON."""
    content = payload.get("messages", payload.get("prompt"))
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def record_usage(span: Span, usage: Mapping[str, Any] | None) -> None:
    """GenAI token counts from an engine ``usage`` object."""
    if not usage:
        return
    for attribute, field in ((INPUT_TOKENS, "prompt_tokens"), (OUTPUT_TOKENS, "completion_tokens")):
        value = usage.get(field)
        if isinstance(value, int):
            span.set_attribute(attribute, value)
