"""The shipped catalog: every Gemma variant, its capabilities, contexts, fixtures and profiles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

import serving.catalog
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
    "gemma-3n-E2B-it": ({"text", "vision", "audio", "tools"}, 32768),
    "gemma-3n-E4B-it": ({"text", "vision", "audio", "tools"}, 32768),
}
FIXTURES = {
    "tiny-random-gemma-3-vision": {"text", "vision"},
    "tiny-random-gemma-3n": {"text", "vision", "audio"},
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
    assert variant.tool_call_parser == "pythonic"
    assert variant.chat_template == "gemma3_tools"


def test_catalog_holds_exactly_the_gemma_variants_and_the_fixtures(catalog: Catalog) -> None:
    assert set(catalog.variants) == set(GEMMA_VARIANTS) | set(FIXTURES)


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


@pytest.mark.parametrize("variant_id", GEMMA_VARIANTS)
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
    assert profile.variants == (
        "gemma-3-270m",
        "tiny-random-gemma-3-vision",
        "tiny-random-gemma-3n",
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
    ],
)
def test_invalid_catalogs_are_refused(edit: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Catalog.model_validate(_with(edit))
