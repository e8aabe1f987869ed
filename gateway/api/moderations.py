"""``POST /v1/moderations``: OpenAI's moderations, judged by a ShieldGemma variant.

Each text is judged once per harm policy of the classifier's family
(``gateway.moderation.policies``); the request takes the way of a completion
(``gateway.proxy.Proxy.generate``: the key's capabilities and models, routing by the
``moderation`` capability, quotas on every judgement's prompt, priority, tracing),
with one engine body of all judgements written for the model chosen (its ``Yes``/``No``
token ids). The answer is OpenAI's moderation object: a result per text with
``flagged``, ``categories``, ``category_scores`` and ``category_applied_input_types``;
a category is flagged above ``GATEWAY_GUARD__DEFAULT_THRESHOLD``. Image parts need a
variant with ``moderation`` and ``vision``, which the catalog does not serve yet: 400.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from gateway.api.limits import moderation_inputs
from gateway.api.responses import GENERATION_ERRORS
from gateway.api.schemas import ModerationRequest
from gateway.errors import UpstreamError
from gateway.model_info import ModelInfo
from gateway.moderation.policies import HARMS, SHIELDGEMMA_HARMS, prompt_check
from gateway.moderation.scores import Thresholds, engine_body, moderation_result, scores, verdicts
from gateway.routing import moderation_needs
from gateway.state import GatewayState, gateway_state

MODERATIONS_PATH = "/v1/moderations"
COMPLETIONS_PATH = "/v1/completions"
router = APIRouter(tags=["moderations"], responses=GENERATION_ERRORS)
State = Annotated[GatewayState, Depends(gateway_state)]


@router.post(MODERATIONS_PATH)
async def moderations(request: Request, body: ModerationRequest, state: State) -> Response:
    texts, images = moderation_inputs(body, state.settings.limits)
    needs = moderation_needs(texts or [""], len(SHIELDGEMMA_HARMS))
    if images:
        needs = replace(needs, capabilities=needs.capabilities | {"vision"})
    chosen: dict[str, Any] = {}

    async def body_for(model: ModelInfo) -> dict[str, Any]:
        harms = HARMS.get(model.moderation_policy or "")
        if harms is None:
            raise UpstreamError(f"'{model.id}' names no known moderation policy.")
        labels = await state.classifier.label_ids(model.id)
        chosen.update(harms=harms, labels=labels)
        return engine_body(model.id, [prompt_check(t, h) for t in texts for h in harms], labels)

    def reshape(answer: Any, headers: Mapping[str, str]) -> Response:
        harms = chosen["harms"]
        values = scores(answer, len(texts) * len(harms), chosen["labels"])
        thresholds = Thresholds(default=state.settings.guard.default_threshold)
        results = [moderation_result(v, harms) for v in verdicts(values, harms, thresholds)]
        served = headers.get("x-gemma-model", "")
        payload = {"id": f"modr-{secrets.token_hex(12)}", "model": served, "results": results}
        return JSONResponse(payload, headers=dict(headers))

    payload = {"model": body.model, "prompt": texts}
    return await state.proxy.generate(
        request, COMPLETIONS_PATH, payload, needs, reshape=reshape, body_for=body_for
    )
