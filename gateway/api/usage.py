"""``GET /v1/usage``: what the calling key has used, per model and against its limits.

The body is ``gateway.quotas.usage.KeyUsage.to_dict``: requests and tokens per model in the
current minute and day (batch jobs' tokens included), and each limit's use, remainder and
reset. A key sees only its own usage; an operator reads any key's under
``/admin/keys/{key_id}/usage`` or with ``gemma-serving keys usage KEY_ID``. Without API
keys (quotas off) nothing is recorded: 404 ``usage_disabled``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from gateway.api.responses import errors
from gateway.auth import authenticate
from gateway.errors import NotFound
from gateway.state import GatewayState, gateway_state

router = APIRouter(tags=["usage"])
State = Annotated[GatewayState, Depends(gateway_state)]


@router.get("/v1/usage", responses=errors(401, 404, 503))
async def read_usage(request: Request, state: State) -> dict[str, Any]:
    key = await authenticate(request, state.proxy.keys)
    if state.usage is None:
        raise NotFound(
            "Usage is recorded only when the gateway holds API keys.", code="usage_disabled"
        )
    return (await state.usage.usage(key)).to_dict()
