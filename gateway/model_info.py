"""What the gateway knows about one upstream model, read from its ``/v1/models`` card.

The serving application's cards carry ``metadata.capabilities``, ``metadata.kind``,
``metadata.context_length`` (the model's), ``metadata.max_model_len`` (the engine's) and
``metadata.max_request_context_length`` (Ray Serve LLM's); LoRA adapters carry
``metadata.base_model_id``; safety classifiers ``metadata.moderation_policy``. The usable
context is the smallest of the three lengths given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CONTEXT_KEYS = ("max_request_context_length", "max_model_len", "context_length")
#: The capability of embedding models, which serve nothing else (not even ``text``).
EMBEDDINGS = "embeddings"
#: The capability of safety classifiers, which generate for the gateway alone (no ``text``).
MODERATION = "moderation"
IMAGE_MODERATION = "image_moderation"
SPECIALISTS = frozenset({EMBEDDINGS, MODERATION, IMAGE_MODERATION})


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One routable model: a variant or a LoRA adapter on one."""

    id: str
    capabilities: frozenset[str]
    context_length: int | None
    order: int
    kind: str = "model"
    base_model_id: str | None = None
    params_b: float | None = None
    #: requests the variant runs at once at most (``max_num_seqs`` x most replicas)
    engine_slots: int | None = None
    #: a safety classifier's policy family (``gateway.moderation.policies.HARMS``)
    moderation_policy: str | None = None

    @property
    def is_adapter(self) -> bool:
        return self.base_model_id is not None

    def size_key(self) -> tuple[float, int]:
        """Smaller first: by parameter count when the card gives one, else catalog order."""
        return (self.params_b if self.params_b is not None else float("inf"), self.order)


def _context(meta: Mapping[str, Any]) -> int | None:
    lengths = [int(meta[k]) for k in CONTEXT_KEYS if isinstance(meta.get(k), int | float)]
    return min(lengths) if lengths else None


def model_from_card(card: Mapping[str, Any], order: int) -> ModelInfo:
    """A ``ModelInfo`` from one entry of ``/v1/models``' ``data`` list."""
    meta: Mapping[str, Any] = card.get("metadata") or {}
    capabilities = frozenset(str(c) for c in meta.get("capabilities") or ["text"])
    if not capabilities & SPECIALISTS:  # every other generating model serves text
        capabilities |= {"text"}
    params = meta.get("params_b")
    return ModelInfo(
        id=str(card["id"]),
        capabilities=capabilities,
        context_length=_context(meta),
        order=order,
        kind=str(meta.get("kind", "model")),
        base_model_id=meta.get("base_model_id"),
        params_b=float(params) if isinstance(params, int | float) else None,
        engine_slots=_slots(meta.get("engine_slots")),
        moderation_policy=_text(meta.get("moderation_policy")),
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _slots(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
