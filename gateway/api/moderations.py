"""``POST /v1/moderations``: OpenAI's moderations, judged by ShieldGemma variants.

Texts go to a text classifier (the ``moderation`` capability: ShieldGemma), each text
judged once per harm policy of the classifier's family (``gateway.moderation.policies``)
in one completion request written for the model chosen (its ``Yes``/``No`` token ids).
Images go to an image classifier (``image_moderation``: ShieldGemma 2), each image judged
once per policy by a chat completion of the image and the policy; the judgements are sent
together and answered as one (``Proxy.generate``'s ``bodies_for``), and the images of an
input make one result (each category's highest score). Both take the way of any
generation (``gateway.proxy.Proxy.generate``: the key's capabilities and models, routing,
quotas on every judgement's prompt, priority, tracing; images are checked and fetched as
chat's are). The answer is OpenAI's moderation object: a result per text (or one for the
images) with ``flagged``, ``categories``, ``category_scores`` and
``category_applied_input_types``; a category is flagged above
``GATEWAY_GUARD__DEFAULT_THRESHOLD``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from gateway.api.limits import moderation_inputs
from gateway.api.responses import GENERATION_ERRORS
from gateway.api.schemas import ModerationRequest
from gateway.errors import UpstreamError
from gateway.model_info import ModelInfo
from gateway.moderation.policies import (
    HARMS,
    IMAGE_HARMS,
    SHIELDGEMMA2_HARMS,
    SHIELDGEMMA_HARMS,
    Harm,
    prompt_check,
)
from gateway.moderation.scores import (
    Labels,
    Thresholds,
    Verdict,
    engine_body,
    image_body,
    moderation_result,
    scores,
    verdicts,
    worst,
)
from gateway.routing import image_moderation_needs, moderation_needs
from gateway.state import GatewayState, gateway_state

MODERATIONS_PATH = "/v1/moderations"
COMPLETIONS_PATH = "/v1/completions"
CHAT_PATH = "/v1/chat/completions"
router = APIRouter(tags=["moderations"], responses=GENERATION_ERRORS)
State = Annotated[GatewayState, Depends(gateway_state)]


@router.post(MODERATIONS_PATH)
async def moderations(request: Request, body: ModerationRequest, state: State) -> Response:
    texts, images = moderation_inputs(body, state.settings.limits)
    if images:
        return await _images(request, body.model, images, state)
    return await _texts(request, body.model, texts, state)


@dataclass
class _Chosen:
    """The classifier the request was sent to: its policy family and label ids, set by
    ``choose`` when the model is picked and read by ``answer``'s reshape."""

    state: GatewayState
    harms: tuple[Harm, ...] = ()
    labels: Labels | None = None

    async def choose(self, model: ModelInfo, families: Mapping[str, tuple[Harm, ...]]) -> Labels:
        harms = families.get(model.moderation_policy or "")
        if harms is None:
            raise UpstreamError(f"'{model.id}' names no moderation policy for this input.")
        self.harms, self.labels = harms, await self.state.classifier.label_ids(model.id)
        return self.labels

    def answer(
        self, judged: int, results: Callable[[list[Verdict], Thresholds], list[dict[str, Any]]]
    ) -> Callable[[Any, Mapping[str, str]], Response]:
        def reshape(answer: Any, headers: Mapping[str, str]) -> Response:
            assert self.labels is not None  # chosen before the engine was asked
            values = scores(answer, judged * len(self.harms), self.labels)
            thresholds = Thresholds(default=self.state.settings.guard.default_threshold)
            payload = {
                "id": f"modr-{secrets.token_hex(12)}",
                "model": headers.get("x-gemma-model", ""),
                "results": results(verdicts(values, self.harms, thresholds), thresholds),
            }
            return JSONResponse(payload, headers=dict(headers))

        return reshape


async def _texts(
    request: Request, requested: str, texts: list[str], state: GatewayState
) -> Response:
    chosen = _Chosen(state)

    async def body_for(model: ModelInfo) -> dict[str, Any]:
        labels = await chosen.choose(model, HARMS)
        prompts = [prompt_check(t, h) for t in texts for h in chosen.harms]
        return engine_body(model.id, prompts, labels)

    def results(judged: list[Verdict], _: Thresholds) -> list[dict[str, Any]]:
        return [moderation_result(v, chosen.harms) for v in judged]

    needs = moderation_needs(texts, len(SHIELDGEMMA_HARMS))
    reshape = chosen.answer(len(texts), results)
    payload = {"model": requested, "prompt": texts}
    return await state.proxy.generate(
        request, COMPLETIONS_PATH, payload, needs, reshape=reshape, body_for=body_for
    )


async def _images(
    request: Request, requested: str, images: list[dict[str, Any]], state: GatewayState
) -> Response:
    chosen = _Chosen(state)

    async def bodies_for(model: ModelInfo, prepared: Mapping[str, Any]) -> list[dict[str, Any]]:
        labels = await chosen.choose(model, IMAGE_HARMS)
        parts = prepared["messages"][0]["content"]  # checked, and fetched when remote
        return [image_body(model.id, p, h, labels) for p in parts for h in chosen.harms]

    def results(judged: list[Verdict], thresholds: Thresholds) -> list[dict[str, Any]]:
        return [moderation_result(worst(judged, thresholds), chosen.harms, "image")]

    needs = image_moderation_needs(len(images), len(SHIELDGEMMA2_HARMS))
    reshape = chosen.answer(len(images), results)
    payload = {"model": requested, "messages": [{"role": "user", "content": images}]}
    return await state.proxy.generate(
        request, CHAT_PATH, payload, needs, reshape=reshape, bodies_for=bodies_for
    )
