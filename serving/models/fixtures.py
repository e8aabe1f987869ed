"""Tiny random-weight checkpoints with the real Gemma 3 / Gemma 3n multimodal architectures.

They exist to drive the real code paths (processor, vLLM's multimodal loaders, Ray Serve
LLM's OpenAI ingress, the gateway's media handling) on a CPU. Their output is noise: every
name says ``tiny-random`` so that nobody mistakes them for models.

- ``tiny-random-gemma-3-vision``: ``Gemma3ForConditionalGeneration`` (SigLIP tower at 224 px,
  16 image tokens) with the Gemma tokenizer plus ``<image_soft_token>``; 16.9 M parameters.
- ``tiny-random-gemma-3n``: ``Gemma3nForConditionalGeneration`` (audio conformer + a shrunken
  MobileNetV5 vision encoder) with the Gemma tokenizer laid out like Gemma 3n's; 34.8 M.
- ``tiny-random-gemma-4``: ``Gemma4ForConditionalGeneration`` (text with per-layer embeddings,
  vision tower shared by images and video frames, audio conformer) with the Gemma tokenizer laid
  out like Gemma 4's and a Gemma 4 chat template (thinking, tools, media parts); 26.8 M.
- ``tiny-lora-gemma-3-270m``: a rank-4 PEFT LoRA adapter for the embedded Gemma 3 270M.
- ``tiny-random-embeddinggemma``: EmbeddingGemma's layout, ``Gemma3TextModel`` (bidirectional
  attention) with the Sentence-Transformers modules vLLM's pooling runner reads (mean pooling,
  two Dense projections, normalization) and Matryoshka dimensions 64/32/16; 17 M parameters.
- ``tiny-random-shieldgemma``: ShieldGemma's architecture, ``Gemma2ForCausalLM`` (soft-capped
  attention and final logits), with the Gemma tokenizer; 17 M parameters. Its Yes/No scores
  are noise: tests force the guard's thresholds.
- ``tiny-random-shieldgemma-2``: ShieldGemma 2's layout, ``ShieldGemma2ForImageClassification``
  (the vision fixture's Gemma 3 under the classifier's config and one more ``model.`` level,
  as the hub checkpoint holds it) with ShieldGemma 2's prompt template; 16.9 M parameters.

Builders are deterministic (fixed seeds) and write into a staging folder that is renamed
into place only when complete, with a checksum manifest.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

from serving.models.embedded import PreparedModel, prepare_embedded_model
from serving.models.manifest import ChecksumMismatch, Manifest, verify
from serving.models.store import gemma_home

VISION_FIXTURE = "tiny-random-gemma-3-vision"
AUDIO_FIXTURE = "tiny-random-gemma-3n"
GEMMA4_FIXTURE = "tiny-random-gemma-4"
LORA_FIXTURE = "tiny-lora-gemma-3-270m"
EMBEDDING_FIXTURE = "tiny-random-embeddinggemma"
SHIELDGEMMA_FIXTURE = "tiny-random-shieldgemma"
SHIELDGEMMA2_FIXTURE = "tiny-random-shieldgemma-2"
SEED = 20250312
_TEMPLATES = files("serving.models").joinpath("templates")

# Gemma 3n's special-token layout (the ids Gemma3nConfig defaults to).
_3N_END_OF_IMAGE = 262144
_3N_IMAGE_SOFT = 262145
_3N_END_OF_AUDIO = 262272
_3N_AUDIO_SOFT = 262273
_3N_VOCAB = 262400

# Gemma 4's control tokens at the ids Gemma 4's tokenizer gives them: it reuses unused slots of
# the Gemma 3 vocabulary (same 262144 ids), so Gemma4Config's default token ids hold.
_GEMMA4_TOKENS = {
    46: "<|tool>",
    47: "<tool|>",
    48: "<|tool_call>",
    49: "<tool_call|>",
    50: "<|tool_response>",
    51: "<tool_response|>",
    52: '<|"|>',
    98: "<|think|>",
    100: "<|channel>",
    101: "<channel|>",
    105: "<|turn>",
    106: "<turn|>",
    255999: "<|image>",
    256000: "<|audio>",
    258880: "<|image|>",
    258881: "<|audio|>",
    258882: "<image|>",
    258883: "<audio|>",
    258884: "<|video|>",
}
# The names Gemma4Processor reads off the tokenizer.
_GEMMA4_PROCESSOR_TOKENS = {
    "image_token": "<|image|>",
    "boi_token": "<|image>",
    "eoi_token": "<image|>",
    "audio_token": "<|audio|>",
    "boa_token": "<|audio>",
    "eoa_token": "<audio|>",
    "video_token": "<|video|>",
}
# Generation ends on <eos>, <turn|> or <|tool_response> (a tool call waits for its result).
_GEMMA4_EOS = [1, 106, 50]
# Soft tokens per image and per video frame: the smallest budget Gemma 4's processors accept
# (vLLM always encodes video frames at 70). vLLM samples video frames itself (32 unless
# media_io_kwargs says otherwise); the video processor's num_frames only serves transformers.
_GEMMA4_SOFT_TOKENS = 70

# A MobileNetV5 encoder with few channels; every stage ends with a `uir` block because
# timm's feature_info cannot end a stage on an attention (`mqa`) block.
_TINY_MNV5_ARCH = [
    ["er_r1_k3_s2_e4_c16"],
    ["uir_r1_a3_k5_s2_e4_c16"],
    ["uir_r1_a5_k5_s2_e4_c32", "mqa_r1_k3_h2_s1_d8_c32", "uir_r1_a0_k0_s1_e2_c32"],
    ["uir_r1_a5_k5_s2_e4_c32", "mqa_r1_k3_h2_s1_d8_c32", "uir_r1_a0_k0_s1_e2_c32"],
]


def _seed() -> None:
    import torch

    torch.manual_seed(SEED)


def _base_tokenizer_dir(embedded: PreparedModel) -> Path:
    return embedded.path


def _rename_weights(out: Path, rename: Callable[[str], str]) -> None:
    """Rewrite the saved safetensors with keys in the layout vLLM's loaders expect."""
    from safetensors.torch import load_file, save_file

    for path in sorted(out.glob("*.safetensors")):
        state = {rename(k): v for k, v in load_file(str(path)).items()}
        save_file(state, str(path), metadata={"format": "pt"})


# --- Gemma 3 vision ---------------------------------------------------------------------


def _gemma3_vision_tokenizer(embedded: PreparedModel, out: Path) -> Any:
    """The Gemma tokenizer with Gemma 3's image markers, saved into ``out``."""
    from transformers import AutoTokenizer

    base: Any = AutoTokenizer.from_pretrained(_base_tokenizer_dir(embedded))
    base.add_special_tokens({"additional_special_tokens": ["<image_soft_token>"]})
    base.save_pretrained(out)
    return AutoTokenizer.from_pretrained(
        out,
        extra_special_tokens={
            "boi_token": "<start_of_image>",
            "eoi_token": "<end_of_image>",
            "image_token": "<image_soft_token>",
        },
    )


def tiny_gemma3_text_config() -> dict[str, Any]:
    """The fields of a tiny Gemma 3 text model (the vision fixtures' language model)."""
    return {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 32,
        "vocab_size": 262208,
        "sliding_window": 64,
        "max_position_embeddings": 4096,
    }


def _gemma3_vision_configs() -> tuple[dict[str, Any], dict[str, Any]]:
    """A tiny Gemma 3 text model and SigLIP tower (224 px, 16 patches a side)."""
    text = tiny_gemma3_text_config()
    vision = {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "image_size": 224,
        "patch_size": 14,
    }
    return text, vision


def _build_vision(embedded: PreparedModel, out: Path) -> None:
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    tokenizer = _gemma3_vision_tokenizer(embedded, out)
    text, vision = _gemma3_vision_configs()
    config = Gemma3Config(text_config=text, vision_config=vision, **_image_tokens(tokenizer))
    _seed()
    Gemma3ForConditionalGeneration(config).eval().save_pretrained(out, safe_serialization=True)
    _finish_gemma3_vision(out, tokenizer, _siglip_vision_model_prefix, "gemma3_chat.jinja")


def _image_tokens(tokenizer: Any) -> dict[str, Any]:
    """Gemma 3's image token fields: 16 soft tokens per image and the markers' ids."""
    return {
        "mm_tokens_per_image": 16,
        "image_token_index": tokenizer.convert_tokens_to_ids("<image_soft_token>"),
        "boi_token_index": tokenizer.convert_tokens_to_ids("<start_of_image>"),
        "eoi_token_index": tokenizer.convert_tokens_to_ids("<end_of_image>"),
    }


def _finish_gemma3_vision(
    out: Path, tokenizer: Any, rename: Callable[[str], str], template: str
) -> None:
    """The saved weights renamed for vLLM, and Gemma 3's processor (224 px, 16 tokens)."""
    from transformers import Gemma3ImageProcessor, Gemma3Processor

    _rename_weights(out, rename)
    processor = Gemma3Processor(
        image_processor=Gemma3ImageProcessor(size={"height": 224, "width": 224}),
        tokenizer=tokenizer,
        chat_template=_TEMPLATES.joinpath(template).read_text(),
        image_seq_length=16,
    )
    processor.save_pretrained(out)


def _siglip_vision_model_prefix(key: str) -> str:
    """transformers 5 drops SigLIP's ``vision_model.`` level; vLLM's tower keeps it.

    Depending on the transformers release, ``save_pretrained`` writes the tower under
    ``model.vision_tower.`` (its own layout) or ``vision_tower.`` (the hub layout).
    """
    for prefix in ("model.vision_tower.", "vision_tower."):
        if key.startswith(prefix):
            if key.startswith(prefix + "vision_model."):
                return key
            return prefix + "vision_model." + key.removeprefix(prefix)
    return key


# --- Gemma 3n (audio + vision) ----------------------------------------------------------


def _gemma3n_tokenizer_json(source: Path, out: Path) -> None:
    """The Gemma tokenizer re-laid like Gemma 3n's: audio/image markers at 3n's ids."""
    data = json.loads((source / "tokenizer.json").read_text())
    for token in data["added_tokens"]:
        if token["id"] == 256000:
            token["content"] = "<start_of_audio>"
    vocab = data["model"]["vocab"]
    if isinstance(vocab, dict):
        vocab.pop("<end_of_image>", None)
        vocab["<start_of_audio>"] = 256000
    else:  # unigram: [[piece, score], ...]
        vocab[256000][0] = "<start_of_audio>"
    named = {
        _3N_END_OF_IMAGE: "<end_of_image>",
        _3N_IMAGE_SOFT: "<image_soft_token>",
        _3N_END_OF_AUDIO: "<end_of_audio>",
        _3N_AUDIO_SOFT: "<audio_soft_token>",
    }
    first_new = max(token["id"] for token in data["added_tokens"]) + 1
    if first_new > _3N_END_OF_IMAGE:
        raise RuntimeError(f"base tokenizer already uses id {first_new - 1}")
    for token_id in range(_3N_END_OF_IMAGE, _3N_VOCAB):
        content = named.get(token_id, f"<reserved_multimodal_{token_id}>")
        data["added_tokens"].append(
            {
                "id": token_id,
                "content": content,
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "special": True,
            }
        )
    (out / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False))
    config = json.loads((source / "tokenizer_config.json").read_text())
    config.pop("added_tokens_decoder", None)
    config.pop("chat_template", None)
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    for name in ("special_tokens_map.json",):
        if (source / name).exists():
            shutil.copy2(source / name, out / name)


def _gemma3n_config() -> Any:
    import timm
    from transformers import Gemma3nConfig

    block_args = timm.models._efficientnet_builder.decode_arch_def(_TINY_MNV5_ARCH)
    text = {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 4,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 32,
        "hidden_size_per_layer_input": 16,
        "num_kv_shared_layers": 2,
        "layer_types": ["sliding_attention", "full_attention"] * 2,
        "sliding_window": 64,
        "laurel_rank": 8,
        "activation_sparsity_pattern": [0.0] * 4,
        "max_position_embeddings": 4096,
    }
    audio = {
        "hidden_size": 64,
        "conf_num_attention_heads": 2,
        "conf_num_hidden_layers": 1,
        "sscp_conv_channel_size": [16, 8],
    }
    vision = {
        "architecture": "mobilenetv5_300m_enc",
        "model_args": {"block_args": block_args, "stem_size": 16},
    }
    return Gemma3nConfig(text_config=text, audio_config=audio, vision_config=vision)


def _clean_block_args() -> list[list[dict[str, Any]]]:
    """timm fills block dicts with callables in place; re-decode clean ones for the config."""
    import timm

    decoded: list[list[dict[str, Any]]] = timm.models._efficientnet_builder.decode_arch_def(
        _TINY_MNV5_ARCH
    )
    return decoded


def _add_shared_kv_norms(out: Path, config: Any) -> None:
    """KV-shared layers carry an (unused) k_norm in hub checkpoints; vLLM 0.29 requires it."""
    import torch
    from safetensors.torch import load_file, save_file

    text = config.text_config
    first_shared = text.num_hidden_layers - text.num_kv_shared_layers
    for path in sorted(out.glob("*.safetensors")):
        state = load_file(str(path))
        for layer in range(first_shared, text.num_hidden_layers):
            key = f"model.language_model.layers.{layer}.self_attn.k_norm.weight"
            state.setdefault(key, torch.ones(text.head_dim, dtype=torch.float32))
        save_file(state, str(path), metadata={"format": "pt"})


def _build_audio(embedded: PreparedModel, out: Path) -> None:
    from transformers import (
        AutoTokenizer,
        Gemma3nAudioFeatureExtractor,
        Gemma3nForConditionalGeneration,
        Gemma3nProcessor,
        SiglipImageProcessor,
    )

    _gemma3n_tokenizer_json(_base_tokenizer_dir(embedded), out)
    tokenizer = AutoTokenizer.from_pretrained(
        out,
        extra_special_tokens={
            "boi_token": "<start_of_image>",
            "eoi_token": "<end_of_image>",
            "image_token": "<image_soft_token>",
            "boa_token": "<start_of_audio>",
            "eoa_token": "<end_of_audio>",
            "audio_token": "<audio_soft_token>",
        },
    )
    expected = {"<end_of_image>": _3N_END_OF_IMAGE, "<audio_soft_token>": _3N_AUDIO_SOFT}
    for token, token_id in expected.items():
        if tokenizer.convert_tokens_to_ids(token) != token_id:
            raise RuntimeError(f"{token} did not land at id {token_id}")
    config = _gemma3n_config()
    _seed()
    model = Gemma3nForConditionalGeneration(config).eval()
    model.config.vision_config.model_args = {"block_args": _clean_block_args(), "stem_size": 16}
    model.save_pretrained(out, safe_serialization=True)
    _add_shared_kv_norms(out, model.config)
    processor = Gemma3nProcessor(
        feature_extractor=Gemma3nAudioFeatureExtractor(),
        image_processor=SiglipImageProcessor(
            size={"height": 768, "width": 768}, do_normalize=False
        ),
        tokenizer=tokenizer,
        chat_template=_TEMPLATES.joinpath("gemma3n_chat.jinja").read_text(),
        audio_seq_length=config.audio_soft_tokens_per_image,
        image_seq_length=config.vision_soft_tokens_per_image,
    )
    processor.save_pretrained(out)


# --- Gemma 4 (text + vision/video + audio) ----------------------------------------------


def _gemma4_tokenizer_json(source: Path, out: Path) -> None:
    """The Gemma tokenizer re-laid like Gemma 4's: its control tokens replace unused slots."""
    data = json.loads((source / "tokenizer.json").read_text())
    vocab = data["model"]["vocab"]
    renamed = 0
    for token in data["added_tokens"]:
        content = _GEMMA4_TOKENS.get(token["id"])
        if content is None:
            continue
        old = token["content"]
        token["content"] = content
        token["special"] = True
        if isinstance(vocab, dict):
            vocab.pop(old, None)
            vocab[content] = token["id"]
        else:  # unigram: [[piece, score], ...]
            vocab[token["id"]][0] = content
        renamed += 1
    if renamed != len(_GEMMA4_TOKENS):
        raise RuntimeError(f"base tokenizer lacks some of Gemma 4's slots ({renamed} found)")
    (out / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False))
    config = json.loads((source / "tokenizer_config.json").read_text())
    config.pop("added_tokens_decoder", None)
    config.pop("chat_template", None)
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


def _gemma4_config(tokenizer: Any) -> Any:
    from transformers import Gemma4Config

    text = {
        "vocab_size": 262144,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 32,
        "global_head_dim": 32,
        "hidden_size_per_layer_input": 16,
        "vocab_size_per_layer_input": 262144,
        "layer_types": ["sliding_attention", "full_attention"],
        "sliding_window": 64,
        "final_logit_softcapping": 30.0,
        "max_position_embeddings": 4096,
        "eos_token_id": list(_GEMMA4_EOS),
    }
    vision = {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "head_dim": 32,
        "patch_size": 16,
        "pooling_kernel_size": 3,
        # Hub configs carry this; vLLM sizes image placeholders and its encoder budget from it.
        "default_output_length": _GEMMA4_SOFT_TOKENS,
    }
    audio = {
        "hidden_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        # The subsampler's projection assumes channels[0] == the 128 mel bins.
        "subsampling_conv_channels": [128, 8],
        "output_proj_dims": 64,
    }
    ids = {
        name: tokenizer.convert_tokens_to_ids(token)
        for name, token in _GEMMA4_PROCESSOR_TOKENS.items()
    }
    return Gemma4Config(
        text_config=text,
        vision_config=vision,
        audio_config=audio,
        boi_token_id=ids["boi_token"],
        eoi_token_id=ids["eoi_token"],
        image_token_id=ids["image_token"],
        video_token_id=ids["video_token"],
        boa_token_id=ids["boa_token"],
        eoa_token_index=ids["eoa_token"],
        audio_token_id=ids["audio_token"],
    )


def _build_gemma4(embedded: PreparedModel, out: Path) -> None:
    from transformers import (
        AutoTokenizer,
        Gemma4AudioFeatureExtractor,
        Gemma4ForConditionalGeneration,
        Gemma4ImageProcessor,
        Gemma4Processor,
        Gemma4VideoProcessor,
        GenerationConfig,
    )

    _gemma4_tokenizer_json(_base_tokenizer_dir(embedded), out)
    tokenizer: Any = AutoTokenizer.from_pretrained(
        out, extra_special_tokens=dict(_GEMMA4_PROCESSOR_TOKENS)
    )
    for token_id, token in _GEMMA4_TOKENS.items():
        if tokenizer.convert_tokens_to_ids(token) != token_id:
            raise RuntimeError(f"{token} did not land at id {token_id}")
    config = _gemma4_config(tokenizer)
    _seed()
    model = Gemma4ForConditionalGeneration(config).eval()
    model.save_pretrained(out, safe_serialization=True)
    GenerationConfig(
        bos_token_id=2, eos_token_id=list(_GEMMA4_EOS), pad_token_id=0
    ).save_pretrained(out)
    processor = Gemma4Processor(
        feature_extractor=Gemma4AudioFeatureExtractor(),
        image_processor=Gemma4ImageProcessor(max_soft_tokens=_GEMMA4_SOFT_TOKENS),
        video_processor=Gemma4VideoProcessor(max_soft_tokens=_GEMMA4_SOFT_TOKENS, num_frames=4),
        tokenizer=tokenizer,
        chat_template=_TEMPLATES.joinpath("gemma4_chat.jinja").read_text(),
        image_seq_length=_GEMMA4_SOFT_TOKENS,
    )
    processor.save_pretrained(out)
    # vLLM 0.29 picks the video loader from `video_processor_type` in this file; without it
    # it falls back to transformers' model-type mapping, whose values are dicts in 5.x, and
    # every `video_url` part fails with "unhashable type: 'dict'".
    processor.video_processor.save_pretrained(out)


# --- EmbeddingGemma ---------------------------------------------------------------------

_EMBEDDING_HIDDEN = 64
_EMBEDDING_PROJECTION = 256
#: EmbeddingGemma's Matryoshka sizes are 768/512/256/128; the fixture's, scaled down.
EMBEDDING_DIMENSIONS = (64, 32, 16)
_ST = "sentence_transformers.models."


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2) + "\n")


def _build_embedding(embedded: PreparedModel, out: Path) -> None:
    """EmbeddingGemma's checkpoint layout: the encoder, then Sentence-Transformers' modules.

    vLLM reads ``modules.json`` (mean pooling from ``1_Pooling``, the ``2_Dense`` and
    ``3_Dense`` projections, L2 normalization when ``Normalize`` is listed) and
    ``matryoshka_dimensions`` from ``config.json`` to allow ``dimensions``.
    """
    import torch
    from safetensors.torch import save_file
    from transformers import AutoTokenizer, Gemma3TextConfig, Gemma3TextModel

    tokenizer: Any = AutoTokenizer.from_pretrained(_base_tokenizer_dir(embedded))
    tokenizer.save_pretrained(out)
    config = Gemma3TextConfig(
        vocab_size=262144,
        hidden_size=_EMBEDDING_HIDDEN,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        query_pre_attn_scalar=32,
        layer_types=["sliding_attention", "full_attention"],
        # Wider than max_position_embeddings: every token sees every other, as it does in
        # EmbeddingGemma for inputs within its 512-token window.
        sliding_window=4096,
        max_position_embeddings=2048,
        use_bidirectional_attention=True,
        architectures=["Gemma3TextModel"],
    )
    _seed()
    Gemma3TextModel(config).eval().save_pretrained(out, safe_serialization=True)
    saved = json.loads((out / "config.json").read_text())
    _write_json(out / "config.json", {**saved, "matryoshka_dimensions": list(EMBEDDING_DIMENSIONS)})
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": _ST + "Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": _ST + "Pooling"},
        {"idx": 2, "name": "2", "path": "2_Dense", "type": _ST + "Dense"},
        {"idx": 3, "name": "3", "path": "3_Dense", "type": _ST + "Dense"},
        {"idx": 4, "name": "4", "path": "4_Normalize", "type": _ST + "Normalize"},
    ]
    _write_json(out / "modules.json", modules)
    _write_json(
        out / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": _EMBEDDING_HIDDEN,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            "include_prompt": True,
        },
    )
    shapes = {
        "2_Dense": (_EMBEDDING_HIDDEN, _EMBEDDING_PROJECTION),
        "3_Dense": (_EMBEDDING_PROJECTION, _EMBEDDING_HIDDEN),
    }
    for folder, (inputs, outputs) in shapes.items():
        _write_json(
            out / folder / "config.json",
            {
                "in_features": inputs,
                "out_features": outputs,
                "bias": False,
                "activation_function": "torch.nn.modules.linear.Identity",
            },
        )
        weight = torch.randn(outputs, inputs) / inputs**0.5
        save_file({"linear.weight": weight}, str(out / folder / "model.safetensors"))
    (out / "4_Normalize").mkdir()
    _write_json(out / "sentence_bert_config.json", {"max_seq_length": 2048, "do_lower_case": False})
    _write_json(
        out / "config_sentence_transformers.json",
        {
            "prompts": {
                "query": "task: search result | query: ",
                "document": "title: none | text: ",
            },
            "similarity_fn_name": "cosine",
        },
    )


# --- ShieldGemma ------------------------------------------------------------------------


def _build_shieldgemma(embedded: PreparedModel, out: Path) -> None:
    """ShieldGemma's layout: a Gemma 2 causal LM (vLLM scores it from the first token)."""
    from transformers import AutoTokenizer, Gemma2Config, Gemma2ForCausalLM

    tokenizer: Any = AutoTokenizer.from_pretrained(_base_tokenizer_dir(embedded))
    tokenizer.save_pretrained(out)
    config = Gemma2Config(
        vocab_size=262144,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        query_pre_attn_scalar=32,
        sliding_window=64,
        max_position_embeddings=8192,
        attn_logit_softcapping=50.0,
        final_logit_softcapping=30.0,
        architectures=["Gemma2ForCausalLM"],
    )
    _seed()
    Gemma2ForCausalLM(config).eval().save_pretrained(out, safe_serialization=True)


# --- ShieldGemma 2 -----------------------------------------------------------------------


def _build_shieldgemma2(embedded: PreparedModel, out: Path) -> None:
    """ShieldGemma 2's layout: Gemma 3's image-text model inside the image classifier."""
    from transformers import ShieldGemma2Config, ShieldGemma2ForImageClassification

    tokenizer = _gemma3_vision_tokenizer(embedded, out)
    text, vision = _gemma3_vision_configs()
    config = ShieldGemma2Config(
        text_config=text,
        vision_config={**vision, "vision_use_head": False},
        architectures=["ShieldGemma2ForImageClassification"],
        **_image_tokens(tokenizer),
    )
    # Read by transformers' classifier, not declared by its config (the hub's has them).
    config.yes_token_index = tokenizer.convert_tokens_to_ids("Yes")
    config.no_token_index = tokenizer.convert_tokens_to_ids("No")
    _seed()
    model = ShieldGemma2ForImageClassification(config).eval()
    model.save_pretrained(out, safe_serialization=True)
    _finish_gemma3_vision(out, tokenizer, _shieldgemma2_hub_layout, "shieldgemma2_chat.jinja")


def _shieldgemma2_hub_layout(key: str) -> str:
    """A saved classifier weight's name as the hub checkpoint (transformers 4.50) has it.

    transformers 5 writes ``model.model.<part>``; the hub has ``model.<part>``, with the
    language model's ``model.`` level and SigLIP's ``vision_model.`` level in place.
    """
    inner = key.removeprefix("model.model.")
    if inner.startswith("language_model.") and not inner.startswith("language_model.model."):
        inner = "language_model.model." + inner.removeprefix("language_model.")
    return "model." + _siglip_vision_model_prefix(inner)


# --- LoRA adapter for the 270M ----------------------------------------------------------


def _build_lora(embedded: PreparedModel, out: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(embedded.path, dtype=torch.float32)
    config = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=["q_proj", "v_proj"],
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
    )
    _seed()
    peft_model = get_peft_model(base, config)
    with torch.no_grad():  # a non-zero B so the adapter really changes the output
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(mean=0.0, std=0.02)
    peft_model.save_pretrained(str(out))
    adapter_config = json.loads((out / "adapter_config.json").read_text())
    adapter_config["base_model_name_or_path"] = "google/gemma-3-270m"
    (out / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2))


# --- building and verifying -------------------------------------------------------------

_BUILDERS: dict[str, Callable[[PreparedModel, Path], None]] = {
    VISION_FIXTURE: _build_vision,
    AUDIO_FIXTURE: _build_audio,
    GEMMA4_FIXTURE: _build_gemma4,
    LORA_FIXTURE: _build_lora,
    EMBEDDING_FIXTURE: _build_embedding,
    SHIELDGEMMA_FIXTURE: _build_shieldgemma,
    SHIELDGEMMA2_FIXTURE: _build_shieldgemma2,
}
FIXTURES = tuple(_BUILDERS)
_RECIPE = "fixture/{name}/v1"


def prepare_fixture(name: str, home: Path | None = None, *, force: bool = False) -> PreparedModel:
    """Build (or verify) one fixture under ``$GEMMA_SERVING_HOME/fixtures``."""
    if name not in _BUILDERS:
        raise KeyError(f"unknown fixture {name!r}; known: {', '.join(FIXTURES)}")
    root = home if home is not None else gemma_home()
    target = root / "fixtures" / name
    embedded = prepare_embedded_model(root)
    source_sha = Manifest.read(embedded.path)
    base_sha = source_sha.source_sha256 if source_sha else ""
    recipe = _RECIPE.format(name=name)
    if not force:
        try:
            if verify(target, recipe=recipe, source_sha256=base_sha):
                return PreparedModel(name, target, built=False)
        except ChecksumMismatch:
            pass
    (root / "fixtures").mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root / "fixtures"))
    try:
        _BUILDERS[name](embedded, staging)
        Manifest.of_directory(staging, recipe=recipe, source_sha256=base_sha).write(staging)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return PreparedModel(name, target, built=True)
