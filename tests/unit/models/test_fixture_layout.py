"""Fixture checkpoints are written in the layout vLLM's Gemma 3 loader reads."""

from __future__ import annotations

import pytest

from serving.models.fixtures import _siglip_vision_model_prefix


@pytest.mark.parametrize(
    ("saved", "expected"),
    [
        (
            "vision_tower.embeddings.patch_embedding.weight",
            "vision_tower.vision_model.embeddings.patch_embedding.weight",
        ),
        (
            "model.vision_tower.encoder.layers.0.mlp.fc1.bias",
            "model.vision_tower.vision_model.encoder.layers.0.mlp.fc1.bias",
        ),
        (
            "vision_tower.vision_model.post_layernorm.bias",
            "vision_tower.vision_model.post_layernorm.bias",
        ),
        ("language_model.model.embed_tokens.weight", "language_model.model.embed_tokens.weight"),
        (
            "multi_modal_projector.mm_soft_emb_norm.weight",
            "multi_modal_projector.mm_soft_emb_norm.weight",
        ),
    ],
)
def test_siglip_tower_keys_gain_the_vision_model_level(saved: str, expected: str) -> None:
    assert _siglip_vision_model_prefix(saved) == expected
