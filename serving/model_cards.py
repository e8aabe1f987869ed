"""The catalog's view of a model in ``/v1/models``: its card, its adapters' cards, its health.

Ray Serve LLM's model cards carry only ``input_modality`` and the context length, and no
``LLMConfig`` field reaches them. Both listings the stack serves add the catalog's metadata
(``capabilities``, ``kind``, ``context_length``, ``engine_slots``, ...; see
``serving.app.model_metadata``) with these functions: the OpenAI ingress of a multi-model
application (``serving.ingress``) and the engine replica of a direct-streaming one
(``serving.server``). Every LoRA adapter gets a card of its own, listed after its base
model, and each card says whether its engine answers now (``metadata.health``, see
``serving.health``)::

    {"id": "gemma-3-270m", "object": "model", "owned_by": "...", "permission": [],
     "metadata": {"model_id": ..., "input_modality": ..., "max_request_context_length": ...,
                  "capabilities": ["text", "tools"], "kind": "model", ...,
                  "health": {"status": "up"}}}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ray.llm._internal.serve.core.configs.openai_api_models import ModelCard

#: Where a direct-streaming engine's ``LLMConfig.experimental_configs`` carries the catalog's
#: metadata of its model (there is no ingress to hand it over).
MODEL_METADATA_KEY = "gemma_model_metadata"


def adapter_metadata(base: Mapping[str, Any], adapter_id: str) -> dict[str, Any]:
    """An adapter serves what its base model serves."""
    meta = {k: v for k, v in base.items() if k != "adapters"}
    return {**meta, "model_id": adapter_id, "base_model_id": base.get("model_id")}


def catalog_card(card: ModelCard, metadata: Mapping[str, Any]) -> ModelCard:
    """Ray's card of a base model with the catalog's metadata added."""
    return card.model_copy(update={"metadata": {**card.metadata, **metadata}})


def adapter_cards(card: ModelCard) -> list[ModelCard]:
    """The cards of the adapters a catalog card lists, in its order."""
    return [
        card.model_copy(update={"id": a, "metadata": adapter_metadata(card.metadata, a)})
        for a in card.metadata.get("adapters", [])
    ]


def base_model_id(card: ModelCard) -> str | None:
    """The base model of an adapter's card (``None`` for a base model)."""
    return card.metadata.get("base_model_id")


def with_health(card: ModelCard, health: Mapping[str, str] | None) -> ModelCard:
    """The card with its engine's health (unchanged when ``health`` is unknown)."""
    if health is None:
        return card
    return card.model_copy(update={"metadata": {**card.metadata, "health": dict(health)}})
