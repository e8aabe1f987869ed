"""``GET /healthz`` (the process answers), ``GET /readyz`` (it can serve) and ``GET /metrics``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.state import GatewayState, gateway_state

router = APIRouter(tags=["operations"])
State = Annotated[GatewayState, Depends(gateway_state)]


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(state: State) -> JSONResponse:
    """Ready when the quota store answers (if quotas are on) and one model is healthy."""
    checks = {
        "upstream": state.registry.ready,
        "quota": await state.quota_healthy(),
    }
    ready = all(checks.values())
    body = {"status": "ready" if ready else "unavailable", "checks": checks}
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics")
async def metrics(state: State) -> Response:
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
