"""``GET /healthz`` (the process answers), ``GET /readyz`` (it can serve) and ``GET /metrics``.

``/readyz`` reports each capability an up variant offers (``ModelRegistry.capabilities``)
and is ready when the upstream lists an up variant, every capability of
``ready_capabilities`` is up, and the quota store answers. Under the fail-open policy a
quota store that does not answer leaves the gateway ready (it admits what it can): the
check says so, ``gateway_quota_backend_up`` is 0 and a warning is logged.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.state import GatewayState, gateway_state

router = APIRouter(tags=["operations"])
#: ``/readyz``'s body, ready (200) or not (503).
READINESS: dict[str, Any] = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["status", "checks"],
                "properties": {
                    "status": {"enum": ["ready", "unavailable"]},
                    "checks": {"type": "object"},
                },
            }
        }
    }
}
READY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {**READINESS, "description": "Ready to serve."},
    503: {**READINESS, "description": "Not ready: the checks say what is missing."},
}
METRICS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Prometheus metrics, text exposition format.",
        "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
    }
}
State = Annotated[GatewayState, Depends(gateway_state)]
log = logging.getLogger(__name__)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _checks(state: GatewayState) -> tuple[bool, dict[str, Any]]:
    registry = state.registry
    capabilities = registry.capabilities()
    quota = await state.quota_healthy()
    state.metrics.observe_health(registry.up(), capabilities, quota)
    fail_open = state.settings.quota.fail_open
    if not quota and fail_open:
        log.warning("quota store unavailable: ready under the fail-open policy")
    required = {c: capabilities.get(c, False) for c in state.settings.ready_capabilities}
    checks: dict[str, Any] = {
        "upstream": registry.ready,
        "quota": quota,
        "capabilities": capabilities,
        "required_capabilities": required,
        "down": dict(registry.down()),
    }
    ready = registry.ready and all(required.values()) and (quota or fail_open)
    return ready, checks


@router.get("/readyz", responses=READY_RESPONSES)
async def readyz(state: State) -> JSONResponse:
    ready, checks = await _checks(state)
    body = {"status": "ready" if ready else "unavailable", "checks": checks}
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", response_class=Response, responses=METRICS_RESPONSES)
async def metrics(state: State) -> Response:
    await _checks(state)
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
