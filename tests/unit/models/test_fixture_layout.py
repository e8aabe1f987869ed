"""Fixture checkpoints are written in the layout vLLM's Gemma 3 and Gemma 4 loaders read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serving.models.fixtures import (
    _GEMMA4_TOKENS,
    FIXTURES,
    GEMMA4_FIXTURE,
    SHIELDGEMMA2_FIXTURE,
    _gemma4_config,
    _gemma4_tokenizer_json,
    _shieldgemma2_hub_layout,
    _siglip_vision_model_prefix,
)


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


def _gemma3_like_tokenizer(directory: Path) -> None:
    """A stand-in for the 270M's tokenizer files: unused slots where Gemma 4 puts its tokens."""
    added = [{"id": 0, "content": "<pad>", "special": True}]
    for token_id in sorted(_GEMMA4_TOKENS):
        content = "<start_of_turn>" if token_id == 105 else f"<unused{token_id}>"
        added.append({"id": token_id, "content": content, "special": True})
    vocab = {token["content"]: token["id"] for token in added} | {"hello": 7}
    data = {"added_tokens": added, "model": {"type": "BPE", "vocab": vocab}}
    (directory / "tokenizer.json").write_text(json.dumps(data))
    config = {"bos_token": "<bos>", "chat_template": "x", "added_tokens_decoder": {}}
    (directory / "tokenizer_config.json").write_text(json.dumps(config))


def test_gemma4_tokenizer_takes_gemma4_control_tokens_at_their_ids(tmp_path: Path) -> None:
    source, out = tmp_path / "src", tmp_path / "out"
    source.mkdir()
    out.mkdir()
    _gemma3_like_tokenizer(source)
    _gemma4_tokenizer_json(source, out)
    data = json.loads((out / "tokenizer.json").read_text())
    by_id = {token["id"]: token["content"] for token in data["added_tokens"]}
    assert {i: by_id[i] for i in _GEMMA4_TOKENS} == _GEMMA4_TOKENS
    vocab = data["model"]["vocab"]
    assert vocab["<|turn>"] == 105
    assert "<start_of_turn>" not in vocab
    assert vocab['<|"|>'] == 52
    assert vocab["hello"] == 7
    config = json.loads((out / "tokenizer_config.json").read_text())
    assert "chat_template" not in config
    assert "added_tokens_decoder" not in config


def test_gemma4_tokenizer_refuses_a_base_without_the_slots(tmp_path: Path) -> None:
    data = {"added_tokens": [{"id": 0, "content": "<pad>"}], "model": {"vocab": {"<pad>": 0}}}
    (tmp_path / "tokenizer.json").write_text(json.dumps(data))
    (tmp_path / "tokenizer_config.json").write_text("{}")
    with pytest.raises(RuntimeError, match="slots"):
        _gemma4_tokenizer_json(tmp_path, tmp_path)


def test_gemma4_config_matches_what_vllm_reads() -> None:
    ids = {content: token_id for token_id, content in _GEMMA4_TOKENS.items()}

    class Tokenizer:
        def convert_tokens_to_ids(self, token: str) -> int:
            return ids[token]

    config = _gemma4_config(Tokenizer())
    # The tokenizer layout is Gemma 4's, so the ids are Gemma4Config's own defaults.
    assert (config.image_token_id, config.audio_token_id, config.video_token_id) == (
        258880,
        258881,
        258884,
    )
    assert (config.boi_token_id, config.eoi_token_id) == (255999, 258882)
    assert (config.boa_token_id, config.eoa_token_index) == (256000, 258883)
    assert config.vision_config.default_output_length == 70
    assert config.audio_config.subsampling_conv_channels[0] == 128  # the mel bins
    text = config.text_config
    assert text.layer_types == ["sliding_attention", "full_attention"]
    assert text.eos_token_id == [1, 106, 50]
    assert text.hidden_size_per_layer_input == 16
    assert text.vocab_size == 262144


def test_gemma4_fixture_is_prepared_with_the_others() -> None:
    assert GEMMA4_FIXTURE in FIXTURES


# transformers 5's save of ShieldGemma2ForImageClassification, the hub checkpoint's names
# (transformers 4.50) and the names of vLLM's Gemma 3 model they load into.
SHIELDGEMMA2_NAMES = [
    (
        "model.model.language_model.model.layers.0.self_attn.q_proj.weight",
        "model.language_model.model.layers.0.self_attn.q_proj.weight",
        "language_model.model.layers.0.self_attn.q_proj.weight",
    ),
    (
        "model.model.language_model.model.embed_tokens.weight",
        "model.language_model.model.embed_tokens.weight",
        "language_model.model.embed_tokens.weight",
    ),
    (
        "model.model.vision_tower.encoder.layers.0.mlp.fc1.bias",
        "model.vision_tower.vision_model.encoder.layers.0.mlp.fc1.bias",
        "vision_tower.vision_model.encoder.layers.0.mlp.fc1.bias",
    ),
    (
        "model.model.multi_modal_projector.mm_input_projection_weight",
        "model.multi_modal_projector.mm_input_projection_weight",
        "multi_modal_projector.mm_input_projection_weight",
    ),
]


@pytest.mark.filterwarnings("ignore::FutureWarning")  # vLLM's Gemma 3 module, importing
@pytest.mark.parametrize(("saved", "hub", "loaded"), SHIELDGEMMA2_NAMES)
def test_shieldgemma2_weights_are_written_as_the_hub_has_them_and_load_into_gemma3(
    saved: str, hub: str, loaded: str
) -> None:
    from serving.shieldgemma2_model import ShieldGemma2ForImageClassification

    assert _shieldgemma2_hub_layout(saved) == hub
    mapper = ShieldGemma2ForImageClassification.hf_to_vllm_mapper
    assert mapper._map_name(hub) == loaded
    assert mapper._map_name(saved) == loaded  # transformers 5's own names load too


def test_shieldgemma2_is_registered_with_vllm_and_prepared_with_the_others() -> None:
    from vllm import ModelRegistry

    from serving.shieldgemma2 import ARCHITECTURE, register

    register()
    assert ARCHITECTURE in ModelRegistry.get_supported_archs()
    assert SHIELDGEMMA2_FIXTURE in FIXTURES
