"""``POST /v1/embeddings``: OpenAI's embeddings, served by the variants with ``embeddings``.

Input: a string, a list of strings, a token array or a list of token arrays (at most
``RequestLimits.max_embedding_inputs``, none empty). ``dimensions`` asks for a Matryoshka
size: the engine truncates the embedding and normalizes it again (vLLM's pooler), and
refuses a size the model was not trained for with a 400. ``encoding_format`` ``base64``
returns each embedding as base64 of little-endian float32s, as OpenAI's does. The request
takes the same way as a completion (``gateway.proxy.Proxy.generate``): the key's
capabilities and models, routing by capability, quotas (its input tokens), priority and
tracing.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from gateway.api.limits import checked_embedding_payload
from gateway.api.responses import GENERATION_ERRORS
from gateway.api.schemas import EmbeddingRequest
from gateway.routing import embedding_needs
from gateway.state import GatewayState, gateway_state

EMBEDDINGS_PATH = "/v1/embeddings"
router = APIRouter(tags=["embeddings"], responses=GENERATION_ERRORS)
State = Annotated[GatewayState, Depends(gateway_state)]


@router.post(EMBEDDINGS_PATH)
async def embeddings(request: Request, body: EmbeddingRequest, state: State) -> Response:
    payload = checked_embedding_payload(body, state.settings.limits)
    return await state.proxy.generate(request, EMBEDDINGS_PATH, payload, embedding_needs(payload))
