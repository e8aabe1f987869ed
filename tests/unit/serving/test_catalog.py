"""The shipped catalog: every Gemma variant, its capabilities, contexts, fixtures and profiles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

import serving.catalog
from gemma_serving.commands import serving as serving_commands
from serving.catalog import (
    CATALOG_ENV,
    CPU,
    Catalog,
    chat_template_text,
    default_catalog_path,
    load_catalog,
    to_data,
)

GEMMA_VARIANTS = {
    "gemma-3-270m": ({"text", "tools"}, 32768),
    "gemma-3-1b-it": ({"text", "tools"}, 32768),
    "gemma-3-4b-it": ({"text", "vision", "tools"}, 131072),
    "gemma-3-12b-it": ({"text", "vision", "tools"}, 131072),
    "gemma-3-27b-it": ({"text", "vision", "tools"}, 131072),
    # vLLM's speech-to-text endpoint serves Gemma 3n; Gemma 4 transcribes through chat.
    "gemma-3n-E2B-it": ({"text", "vision", "audio", "tools", "transcription"}, 32768),
    "gemma-3n-E4B-it": ({"text", "vision", "audio", "tools", "transcription"}, 32768),
    # EmbeddingGemma: vLLM's pooling runner, /v1/embeddings only.
    "embeddinggemma-300m": ({"embeddings"}, 2048),
    # ShieldGemma: text safety classifiers (Gemma 2), /v1/moderations and the guard only.
    "shieldgemma-2b": ({"moderation"}, 8192),
    "shieldgemma-9b": ({"moderation"}, 8192),
    "shieldgemma-27b": ({"moderation"}, 8192),
    "shieldgemma-2-4b-it": ({"image_moderation"}, 8192),
}
# Gemma 4: every size thinks and calls tools with the gemma4 parsers and has an MTP draft.
_G4 = {"text", "vision", "tools", "reasoning"}
GEMMA_4_VARIANTS = {
    "gemma-4-E2B-it": (_G4 | {"audio", "video"}, 131072),
    "gemma-4-E4B-it": (_G4 | {"audio", "video"}, 131072),
    "gemma-4-12B-it": (_G4 | {"audio"}, 262144),
    "gemma-4-26B-A4B-it": (_G4, 262144),
    "gemma-4-31B-it": (_G4, 262144),
}
FIXTURES = {
    "tiny-random-gemma-3-vision": {"text", "vision"},
    "tiny-random-gemma-3n": {"text", "vision", "audio", "transcription"},
    "tiny-random-gemma-4": {"text", "vision", "audio", "video", "tools", "reasoning"},
    "tiny-random-embeddinggemma": {"embeddings"},
    "tiny-random-shieldgemma": {"moderation"},
    "tiny-random-shieldgemma-2": {"image_moderation"},
}
GPUS = {"nvidia-l4": 24, "nvidia-a100-80gb": 80, "nvidia-h100-80gb": 80}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def raw_catalog() -> dict[str, Any]:
    return yaml.safe_load(Path(serving.catalog.__file__).with_name("catalog.yaml").read_text())


@pytest.mark.parametrize(("variant_id", "expected"), GEMMA_VARIANTS.items())
def test_every_gemma_variant_with_its_capabilities_and_context(
    catalog: Catalog, variant_id: str, expected: tuple[set[str], int]
) -> None:
    capabilities, context = expected
    variant = catalog.variants[variant_id]
    assert variant.kind == "model"
    assert variant.hf_id == f"google/{variant_id}"
    assert set(variant.capabilities) == capabilities
    assert variant.context_length == context
    if "tools" in capabilities:
        assert variant.tool_call_parser == "pythonic"
        assert variant.chat_template == "gemma3_tools"


@pytest.mark.parametrize(("variant_id", "expected"), GEMMA_4_VARIANTS.items())
def test_every_gemma_4_variant_with_its_capabilities_parsers_and_draft(
    catalog: Catalog, variant_id: str, expected: tuple[set[str], int]
) -> None:
    capabilities, context = expected
    variant = catalog.variants[variant_id]
    assert variant.kind == "model"
    assert variant.hf_id == f"google/{variant_id}"
    assert set(variant.capabilities) == capabilities
    assert variant.context_length == context
    assert (variant.tool_call_parser, variant.reasoning_parser) == ("gemma4_constrained", "gemma4")
    assert variant.chat_template is None  # the tokenizer's own Gemma 4 template
    assert variant.mtp_draft is not None
    assert variant.mtp_draft.hf_id == f"google/{variant_id}-assistant"
    # Global layers: 512-wide heads (transformers' global_head_dim default).
    assert variant.architecture.global_head_dim == 512
    assert variant.architecture.head_dim == 256
    # Every GPU engine speculates with the draft.
    assert all(e.speculative is not None for t, e in variant.engines.items() if t != CPU)


def test_gemma_4_memory_follows_the_claimed_bf16_figures(catalog: Catalog) -> None:
    claimed_bf16 = {
        "gemma-4-E2B-it": 11.4,
        "gemma-4-E4B-it": 17.9,
        "gemma-4-12B-it": 26.7,
        "gemma-4-26B-A4B-it": 57.7,
        "gemma-4-31B-it": 69.9,
    }
    for variant_id, bf16 in claimed_bf16.items():
        memory = catalog.variants[variant_id].memory_gb()
        assert memory["bf16"] == pytest.approx(bf16), variant_id
        # Embeddings stay bf16 under vLLM's quantization: more than half the bf16 size.
        assert memory["fp8"] > bf16 / 2, variant_id


def test_the_mixture_of_experts_lists_total_and_active_parameters(catalog: Catalog) -> None:
    moe = catalog.variants["gemma-4-26B-A4B-it"]
    assert (moe.params_b, moe.active_params_b) == (28.85, 3.8)
    assert moe.memory_gb()["bf16"] == pytest.approx(2 * 28.85)  # every expert is loaded
    dense = [v for v in catalog.variants.values() if v.id != moe.id]
    assert all(v.active_params_b is None for v in dense)


def test_catalog_holds_exactly_the_gemma_variants_and_the_fixtures(catalog: Catalog) -> None:
    expected = set(GEMMA_VARIANTS) | set(GEMMA_4_VARIANTS) | set(FIXTURES)
    assert set(catalog.variants) == expected


@pytest.mark.parametrize(("variant_id", "capabilities"), FIXTURES.items())
def test_fixtures_are_named_as_fixtures_and_run_only_on_cpu(
    catalog: Catalog, variant_id: str, capabilities: set[str]
) -> None:
    variant = catalog.variants[variant_id]
    assert variant.kind == "fixture"
    assert variant.hf_id is None
    assert variant.source_for(CPU) == f"fixture:{variant_id}"
    assert set(variant.engines) == {CPU}
    assert set(variant.capabilities) == capabilities
    assert "TEST FIXTURE" in variant.description


def test_gpu_table(catalog: Catalog) -> None:
    assert {k: g.memory_gb for k, g in catalog.gpus.items()} == GPUS
    assert catalog.gpus["nvidia-l4"].ray_accelerator_type == "L4"


@pytest.mark.parametrize("variant_id", [*GEMMA_VARIANTS, *GEMMA_4_VARIANTS])
def test_every_real_variant_has_an_engine_profile_per_gpu(
    catalog: Catalog, variant_id: str
) -> None:
    assert set(GPUS) <= set(catalog.variants[variant_id].engines)


def test_memory_needs_in_bf16_and_quantized(catalog: Catalog) -> None:
    assert catalog.variants["gemma-3-27b-it"].memory_gb() == {
        "bf16": 54.8,
        "fp8": 27.4,
        "int4": 13.7,
    }
    assert catalog.variants["gemma-3-1b-it"].memory_gb()["bf16"] == 2.0


def test_cpu_dev_profile(catalog: Catalog) -> None:
    profile = catalog.profile("cpu-dev")
    assert profile.target == CPU
    assert profile.variants == ("gemma-3-270m", "tiny-random-gemma-4")
    # The integration tests' stack: cpu-dev and the specialists (embeddings, moderations).
    assert catalog.profile("cpu-full").variants == (
        *profile.variants,
        "tiny-random-embeddinggemma",
        "tiny-random-shieldgemma",
    )
    assert catalog.profile("cpu-gemma3-media").variants == (
        "tiny-random-gemma-3-vision",
        "tiny-random-gemma-3n",
        "tiny-random-shieldgemma-2",
    )
    real = catalog.variants["gemma-3-270m"]
    assert real.source_for(CPU) == "local:gemma-3-270m"
    engine = real.engines[CPU]
    assert (engine.dtype, engine.enforce_eager, engine.max_model_len) == ("float32", True, 4096)


def test_gke_profiles_use_gpu_targets_without_fixtures(catalog: Catalog) -> None:
    assert catalog.profile("gke-l4").target == "nvidia-l4"
    assert catalog.profile("gke-h100").target == "nvidia-h100-80gb"
    for name, profile in catalog.profiles.items():
        if profile.target != CPU:
            kinds = {v.kind for v in catalog.profile_variants(name)}
            assert kinds == {"model"}, name


def test_the_270m_lists_its_lora_adapter_for_cpu_only(catalog: Catalog) -> None:
    variant = catalog.variants["gemma-3-270m"]
    assert [(a.name, a.source) for a in variant.adapters_for(CPU)] == [
        ("tiny-lora", "fixture:tiny-lora-gemma-3-270m")
    ]
    assert variant.adapters_for("nvidia-l4") == []


def test_mm_limits_default_to_one_item_per_served_modality(catalog: Catalog) -> None:
    assert catalog.variants["tiny-random-gemma-3n"].mm_limits(CPU) == {"image": 1, "audio": 1}
    assert catalog.variants["tiny-random-gemma-3-vision"].mm_limits(CPU) == {"image": 1}
    assert catalog.variants["gemma-3-270m"].mm_limits(CPU) == {}
    assert catalog.variants["gemma-3-4b-it"].mm_limits("nvidia-h100-80gb") == {"image": 4}


def test_unknown_profile_names_the_known_ones(catalog: Catalog) -> None:
    with pytest.raises(KeyError, match=r"unknown profile 'gke-tpu'.*cpu-dev"):
        catalog.profile("gke-tpu")


def test_env_var_selects_another_catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = raw_catalog()
    data["profiles"]["mine"] = {"target": "cpu", "variants": ["gemma-3-270m"]}
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv(CATALOG_ENV, str(path))
    assert default_catalog_path() == path
    assert "mine" in load_catalog().profiles
    monkeypatch.delenv(CATALOG_ENV)
    assert "mine" not in load_catalog().profiles


def test_data_round_trip(catalog: Catalog) -> None:
    assert Catalog.model_validate(to_data(catalog)) == catalog
    subset = catalog.subset("gke-l4")
    assert set(subset.variants) == set(catalog.profile("gke-l4").variants)
    assert all(set(v.engines) == {"nvidia-l4"} for v in subset.variants.values())
    assert Catalog.model_validate(yaml.safe_load(yaml.safe_dump(to_data(subset)))) == subset


def test_packaged_tool_template_loads_by_name() -> None:
    assert "tool_output" in chat_template_text("gemma3_tools")


def _with(edit: Any) -> dict[str, Any]:
    data = raw_catalog()
    edit(data)
    return data


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: d["variants"]["tiny-random-gemma-3n"]["engines"].update(
                {"nvidia-l4": {"max_model_len": 2048, "max_num_seqs": 4}}
            ),
            "fixture",
        ),
        (
            lambda d: d["profiles"].update({"x": {"target": "cpu", "variants": ["gemma-3-4b-it"]}}),
            "gemma-3-4b-it has no engine profile for 'cpu'",
        ),
        (
            lambda d: d["profiles"].update({"x": {"target": "nvidia-l4", "variants": ["nope"]}}),
            "unknown variant 'nope'",
        ),
        (
            lambda d: d["profiles"].update(
                {"x": {"target": "tpu-v5e", "variants": ["gemma-3-1b-it"]}}
            ),
            "unknown target 'tpu-v5e'",
        ),
        (
            lambda d: d["variants"]["gemma-3-1b-it"]["engines"]["nvidia-l4"].update(
                {"max_model_len": 65536}
            ),
            "exceeds the context length 32768",
        ),
        (
            lambda d: d["variants"]["gemma-3-1b-it"]["capabilities"].remove("tools"),
            "'tools' and tool_call_parser go together",
        ),
        (
            lambda d: d["variants"]["gemma-3-1b-it"]["engines"]["nvidia-l4"].update(
                {"limit_mm_per_prompt": {"image": 1}}
            ),
            "needs 'vision'",
        ),
        (
            lambda d: d["variants"]["gemma-3-270m"]["adapters"][0].pop("targets"),
            "fixture adapter 'tiny-lora' needs targets",
        ),
        (
            lambda d: d["variants"]["gemma-3-1b-it"].update({"chat_template": "missing_template"}),
            "missing_template",
        ),
        (
            lambda d: d["variants"]["gemma-3-1b-it"]["engines"]["nvidia-l4"].update({"typo": 1}),
            "typo",
        ),
        # Speculative decoding: GPU targets only, and only with an MTP draft.
        (
            lambda d: d["variants"]["gemma-4-E2B-it"]["engines"].update(
                {
                    "cpu": {
                        "dtype": "float32",
                        "max_model_len": 4096,
                        "max_num_seqs": 4,
                        "cpu_kv_cache_gb": 1,
                        "speculative": {"num_speculative_tokens": 1},
                    }
                }
            ),
            "gemma-4-E2B-it on cpu: speculative decoding is for GPU targets only",
        ),
        (
            lambda d: d["variants"]["gemma-3-1b-it"]["engines"]["nvidia-l4"].update(
                {"speculative": {"num_speculative_tokens": 1}}
            ),
            "gemma-3-1b-it on nvidia-l4: speculative needs the variant's mtp_draft",
        ),
        (
            lambda d: d["variants"]["gemma-4-31B-it"]["engines"]["nvidia-h100-80gb"].update(
                {"speculative": {"method": "eagle"}}
            ),
            "speculative.method",
        ),
        (
            lambda d: d["variants"]["gemma-4-31B-it"]["engines"]["nvidia-h100-80gb"].update(
                {"speculative": {"num_speculative_tokens": 0}}
            ),
            "num_speculative_tokens",
        ),
        (
            lambda d: d["variants"]["gemma-4-31B-it"]["mtp_draft"].update(
                {"source": "fixture:tiny-random-gemma-3n"}
            ),
            "an mtp_draft only runs on GPU targets",
        ),
        (
            lambda d: d["variants"]["gemma-4-E4B-it"]["engines"]["nvidia-l4"].update(
                {"engine_kwargs": {"speculative_config": {"method": "ngram"}}}
            ),
            r"set the engine profile's speculative, not engine_kwargs\['speculative_config'\]",
        ),
        # Thinking: the capability and the parser go together, like tools.
        (
            lambda d: d["variants"]["gemma-4-E4B-it"].pop("reasoning_parser"),
            "'reasoning' and reasoning_parser go together",
        ),
        (
            lambda d: d["variants"]["gemma-4-E4B-it"]["capabilities"].remove("reasoning"),
            "'reasoning' and reasoning_parser go together",
        ),
        (
            lambda d: d["variants"]["gemma-3-1b-it"]["engines"]["nvidia-l4"].update(
                {"engine_kwargs": {"reasoning_parser": "gemma4"}}
            ),
            "set the variant's reasoning_parser",
        ),
        # A mixture of experts: the active parameters are a part of the total.
        (
            lambda d: d["variants"]["gemma-4-26B-A4B-it"].update({"active_params_b": 30}),
            r"active_params_b \(30\) is a mixture of experts' share of params_b",
        ),
        (
            lambda d: d["variants"]["gemma-4-E2B-it"].update({"embedding_params_b": 6}),
            r"embedding_params_b \(6\) is part of params_b",
        ),
        (
            lambda d: d["variants"]["gemma-4-E2B-it"]["architecture"].update(
                {"kv_shared_layers": 35}
            ),
            "must leave some of the 35 layers with a KV cache",
        ),
        (
            lambda d: d["variants"]["gemma-4-E2B-it"]["capabilities"].remove("video"),
            r"limit_mm_per_prompt\['video'\] needs 'video'",
        ),
    ],
)
def test_invalid_catalogs_are_refused(edit: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Catalog.model_validate(_with(edit))


def _catalog_cli(*args: str) -> Any:
    app = typer.Typer()
    serving_commands.register(app)
    return CliRunner().invoke(app, ["catalog", *args])


def test_the_catalog_command_validates_and_lists_every_variant(catalog: Catalog) -> None:
    result = _catalog_cli()
    assert result.exit_code == 0, result.output
    for variant_id in catalog.variants:
        assert variant_id in result.output
    assert "3.8B of 28.85B parameters active per token" in result.output
    assert "MTP draft google/gemma-4-31B-it-assistant" in result.output

    listed = json.loads(_catalog_cli("--json").output)
    assert [v["id"] for v in listed["variants"]] == list(catalog.variants)
    moe = next(v for v in listed["variants"] if v["id"] == "gemma-4-26B-A4B-it")
    assert (moe["params_b"], moe["active_params_b"]) == (28.85, 3.8)
    for variant in listed["variants"]:
        for target, row in variant["engines"].items():
            if target != CPU:
                assert row["per_gpu_gb"] <= row["available_gb"], (variant["id"], target)
                assert row["full_length_sequences"] >= 3, (variant["id"], target)


def test_the_catalog_command_explains_an_invalid_catalog(tmp_path: Path) -> None:
    data = raw_catalog()
    data["variants"]["gemma-4-31B-it"]["engines"]["nvidia-l4"]["tensor_parallel_size"] = 1
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(data))
    result = _catalog_cli("--catalog", str(path))
    assert result.exit_code == 2
    assert "invalid catalog" in result.output
    assert "gemma-4-31B-it does not fit nvidia-l4" in result.output


def test_safety_classifiers_name_their_policy_and_serve_nothing_else(catalog: Catalog) -> None:
    classifiers = [v for v in catalog.variants.values() if "moderation" in v.capabilities]
    assert {v.id for v in classifiers} == {
        "shieldgemma-2b",
        "shieldgemma-9b",
        "shieldgemma-27b",
        "tiny-random-shieldgemma",
    }
    assert all(v.moderation_policy == "shieldgemma" for v in classifiers)
    image_classifiers = [
        v for v in catalog.variants.values() if v.moderation_policy == "shieldgemma2"
    ]
    assert {v.id for v in image_classifiers} == {"shieldgemma-2-4b-it", "tiny-random-shieldgemma-2"}
    for variant in image_classifiers:
        assert variant.capabilities == {"image_moderation"}
        for target, engine in variant.engines.items():
            assert variant.mm_limits(target) == {"image": 1}  # one image per judgement
            assert engine.engine_kwargs["runner"] == "generate"  # read at its first token
    data = raw_catalog()
    shield = data["variants"]["shieldgemma-2b"]
    for broken, message in (
        ({**shield, "capabilities": ["moderation", "text"]}, "serves 'moderation' or"),
        ({**shield, "capabilities": ["moderation", "image_moderation"]}, "'moderation' or"),
        ({**shield, "moderation_policy": None}, "names its moderation_policy"),
        ({**shield, "moderation_policy": "shieldgemma2"}, "goes with 'image_moderation'"),
        ({**data["variants"]["gemma-3-1b-it"], "moderation_policy": "shieldgemma"}, "goes with"),
    ):
        changed = {**data, "variants": {**data["variants"], "shieldgemma-2b": broken}}
        with pytest.raises(ValueError, match=message):
            Catalog.model_validate(changed)


def test_embedding_variants_run_on_the_pooling_runner_and_serve_nothing_else(
    catalog: Catalog,
) -> None:
    for variant_id in ("embeddinggemma-300m", "tiny-random-embeddinggemma"):
        variant = catalog.variants[variant_id]
        assert variant.capabilities == {"embeddings"}
        for engine in variant.engines.values():
            assert engine.engine_kwargs["runner"] == "pooling"
            assert engine.engine_kwargs["convert"] == "embed"
    real = catalog.variants["embeddinggemma-300m"].engines["nvidia-l4"].engine_kwargs
    assert real["hf_overrides"] == {"matryoshka_dimensions": [768, 512, 256, 128]}
