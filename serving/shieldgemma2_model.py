"""vLLM's Gemma 3 image-text model under ShieldGemma 2's name, config and weight layout.

Imported by vLLM only when a ShieldGemma 2 engine loads (``serving.shieldgemma2``
registers it lazily); see that module for why it exists.
"""

from __future__ import annotations

from typing import Any

from transformers import ShieldGemma2Config
from vllm.model_executor.models.gemma3_mm import (
    Gemma3DummyInputsBuilder,
    Gemma3ForConditionalGeneration,
    Gemma3MultiModalProcessor,
    Gemma3ProcessingInfo,
)
from vllm.model_executor.models.utils import WeightsMapper
from vllm.multimodal import MULTIMODAL_REGISTRY


class ShieldGemma2ProcessingInfo(Gemma3ProcessingInfo):
    """Gemma 3's processing, reading ShieldGemma 2's config (same field names)."""

    def get_hf_config(self) -> Any:
        return self.ctx.get_hf_config(ShieldGemma2Config)


@MULTIMODAL_REGISTRY.register_processor(
    Gemma3MultiModalProcessor,
    info=ShieldGemma2ProcessingInfo,
    dummy_inputs=Gemma3DummyInputsBuilder,
)
class ShieldGemma2ForImageClassification(Gemma3ForConditionalGeneration):
    """Gemma 3 with the classifier wrapper's ``model.`` level taken off every weight name."""

    # Applied in order, each to what the one before left. transformers 5's names first (one
    # level deeper, SigLIP's ``vision_model.`` level gone), then the hub's (transformers
    # 4.50): Gemma 3's names of that time, which are vLLM's, under the wrapper's ``model.``.
    hf_to_vllm_mapper = WeightsMapper(
        orig_to_new_prefix={
            "model.model.language_model.model.": "language_model.model.",
            "model.model.vision_tower.": "vision_tower.vision_model.",
            "model.model.multi_modal_projector.": "multi_modal_projector.",
            "model.lm_head.": "language_model.lm_head.",
            "model.": "",
        }
    )
