"""``POST /v1/responses``: OpenAI's Responses API, stateless, served as a chat completion.

``gateway.responses.convert`` maps the request onto chat (and says what is supported);
the chat request then takes the chat path (capability routing, keys, quotas, media
checks, priority, tracing) and its answer comes back as a response object, or its stream
as response events (``gateway.responses.stream``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from gateway.api.limits import checked_response_payload
from gateway.api.responses import GENERATION_ERRORS, JSON_OR_STREAM
from gateway.api.schemas import ResponseRequest
from gateway.reasoning import thinking_payload
from gateway.responses.convert import chat_payload, new_id, response_object
from gateway.responses.stream import response_events
from gateway.routing import chat_needs
from gateway.state import GatewayState, gateway_state

CHAT_PATH = "/v1/chat/completions"
router = APIRouter(tags=["responses"], responses={200: JSON_OR_STREAM, **GENERATION_ERRORS})
State = Annotated[GatewayState, Depends(gateway_state)]


@router.post("/v1/responses")
async def create_response(request: Request, body: ResponseRequest, state: State) -> Response:
    given = checked_response_payload(body, state.settings.limits)
    payload = thinking_payload(chat_payload(given))
    needs = chat_needs(payload, video_tokens=state.settings.media.video_tokens)
    response_id = new_id("resp")

    def reshape(chat: Any, headers: Mapping[str, str]) -> Response:
        model = str(chat.get("model") or given["model"]) if isinstance(chat, Mapping) else ""
        answer = response_object(
            chat if isinstance(chat, Mapping) else {}, given, response_id, model
        )
        return JSONResponse(answer, headers=dict(headers))

    return await state.proxy.generate(
        request,
        CHAT_PATH,
        payload,
        needs,
        reshape=reshape,
        events=response_events(given, response_id),
    )
