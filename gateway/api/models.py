"""``GET /v1/models``: the upstream's variants and adapters, then the aliases.

Each alias is listed as a model with ``metadata.kind = "alias"``, the models it
may route to and the union of their capabilities.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from gateway.api.responses import errors
from gateway.errors import ModelNotFound
from gateway.routing import AUTO
from gateway.state import GatewayState, gateway_state

router = APIRouter(tags=["models"])
State = Annotated[GatewayState, Depends(gateway_state)]


def _alias_card(alias: str, prefix: str | None, state: GatewayState) -> dict[str, Any]:
    members = [
        m
        for m in state.registry.models
        if not m.is_adapter and (prefix is None or m.id.startswith(prefix))
    ]
    capabilities = sorted(set().union(*(m.capabilities for m in members))) if members else []
    return {
        "id": alias,
        "object": "model",
        "created": 0,
        "owned_by": "gemma-serving",
        "metadata": {
            "kind": "alias",
            "models": [m.id for m in members],
            "capabilities": capabilities,
        },
    }


def _cards(state: GatewayState) -> list[dict[str, Any]]:
    cards = [dict(c) for c in state.registry.cards]
    cards.append(_alias_card(AUTO, None, state))
    cards.extend(_alias_card(a, p, state) for a, p in state.settings.aliases.items())
    return cards


@router.get("/v1/models")
async def list_models(state: State) -> dict[str, Any]:
    return {"object": "list", "data": _cards(state)}


@router.get("/v1/models/{model_id:path}", responses=errors(404))
async def get_model(model_id: str, state: State) -> dict[str, Any]:
    for card in _cards(state):
        if card["id"] == model_id:
            return card
    raise ModelNotFound(f"The model '{model_id}' does not exist.", param="model")
