"""Ray Serve LLM's OpenAI ingress, publishing the catalog's view of each model.

Its supported extension point is the ingress class (``LLMServingArgs.ingress_cls_config``),
whose ``ingress_extra_kwargs`` this subclass receives: each variant's card gains the
catalog's metadata and every LoRA adapter gets a card of its own (``serving.model_cards``).
Everything else (routing, streaming, errors) is Ray's.

Each listing also says whether each engine answers now (``metadata.health``, see
``serving.health``): the gateway polls ``/v1/models`` and routes around an engine that is
down or restarting, rather than queueing behind it in Serve's router.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ray.serve.llm.ingress import OpenAiIngress

from serving.health import HEALTH_TIMEOUT_S, engine_health
from serving.logs import install_trace_ids
from serving.model_cards import adapter_cards, base_model_id, catalog_card, with_health

if TYPE_CHECKING:
    from ray.llm._internal.serve.core.configs.openai_api_models import ModelCard, ModelList
    from ray.serve.handle import DeploymentHandle


class GemmaIngress(OpenAiIngress):
    """The OpenAI ingress with catalog metadata and LoRA adapter cards in ``/v1/models``."""

    def __init__(
        self,
        llm_deployments: dict[str, DeploymentHandle],
        model_cards: dict[str, ModelCard],
        *,
        lora_paths: dict[str, str] | None = None,
        model_metadata: dict[str, dict[str, Any]] | None = None,
        health_timeout_s: float = HEALTH_TIMEOUT_S,
        **kwargs: Any,
    ) -> None:
        install_trace_ids()  # this replica's log lines carry their request's trace id
        metadata = model_metadata or {}
        cards = {
            model_id: catalog_card(card, metadata.get(model_id, {}))
            for model_id, card in model_cards.items()
        }
        super().__init__(llm_deployments, cards, lora_paths=lora_paths, **kwargs)
        self._engines = dict(llm_deployments)
        self._health_timeout_s = health_timeout_s
        self._adapter_cards = {
            adapter.id: adapter for card in cards.values() for adapter in adapter_cards(card)
        }

    async def model(self, model_id: str) -> ModelCard | None:
        if model_id in self._adapter_cards:
            return self._adapter_cards[model_id]
        return await super().model(model_id)

    async def models(self) -> ModelList:
        listed = await super().models()
        health = await engine_health(self._engines, timeout_s=self._health_timeout_s)
        data = []
        for card in listed.data:
            data.append(with_health(card, health.get(card.id)))
            data.extend(
                with_health(a, health.get(card.id))
                for a in self._adapter_cards.values()
                if base_model_id(a) == card.id
            )
        return listed.model_copy(update={"data": data})
