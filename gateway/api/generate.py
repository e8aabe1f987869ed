"""``POST /v1/chat/completions`` and ``POST /v1/completions``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from gateway.api.limits import checked_payload
from gateway.api.responses import GENERATION_ERRORS, JSON_OR_STREAM
from gateway.api.schemas import ChatCompletionRequest, CompletionRequest
from gateway.reasoning import thinking_payload
from gateway.routing import chat_needs, completion_needs
from gateway.state import GatewayState, gateway_state

router = APIRouter(tags=["generation"], responses={200: JSON_OR_STREAM, **GENERATION_ERRORS})
State = Annotated[GatewayState, Depends(gateway_state)]


@router.post("/v1/chat/completions")
async def chat_completions(request: Request, body: ChatCompletionRequest, state: State) -> Response:
    payload = thinking_payload(checked_payload(body, state.settings.limits))
    needs = chat_needs(payload, video_tokens=state.settings.media.video_tokens)
    return await state.proxy.generate(request, "/v1/chat/completions", payload, needs)


@router.post("/v1/completions")
async def completions(request: Request, body: CompletionRequest, state: State) -> Response:
    payload = checked_payload(body, state.settings.limits)
    return await state.proxy.generate(
        request, "/v1/completions", payload, completion_needs(payload)
    )
