"""Memory estimates and the fit check for every GPU profile, positive and negative."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from serving.catalog import CPU, Catalog, EngineProfile, check_fit, load_catalog, to_data
from serving.memory import AttentionShape, FitError, kv_cache_gb, weights_gb


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def engine(**fields: Any) -> EngineProfile:
    return EngineProfile.model_validate({"max_num_seqs": 8, **fields})


def gpu_profiles() -> list[tuple[str, str]]:
    cat = load_catalog()
    return [(v.id, t) for v in cat.variants.values() for t in v.engines if t != CPU]


def test_weights_by_precision() -> None:
    assert weights_gb(27.4, "bf16") == pytest.approx(54.8)
    assert weights_gb(27.4, "fp8") == pytest.approx(27.4)
    assert weights_gb(1.0, "fp32") == pytest.approx(4.0)


def test_kv_cache_grows_only_on_global_layers() -> None:
    # 12 layers, every 6th global -> 2 global, 10 local layers with a 512-token window.
    shape = AttentionShape(
        num_layers=12,
        num_attention_heads=4,
        num_kv_heads=1,
        head_dim=256,
        sliding_window=512,
        global_every=6,
    )
    per_layer_token = 2 * 1 * 256 * 2  # K and V, bf16
    assert kv_cache_gb(shape, 4096, 2) == pytest.approx(
        per_layer_token * (2 * 4096 + 10 * 512) / 1e9
    )
    assert kv_cache_gb(shape, 256, 2) == pytest.approx(per_layer_token * 12 * 256 / 1e9)


def test_gemma_3n_shared_kv_layers_hold_no_cache() -> None:
    base = dict(
        num_layers=30, num_attention_heads=8, num_kv_heads=2, head_dim=256, sliding_window=512
    )
    shared = AttentionShape(**base, global_every=5, kv_shared_layers=10)
    assert (shared.kv_layers, shared.global_layers, shared.local_layers) == (20, 4, 16)


@pytest.mark.parametrize(("variant_id", "target"), gpu_profiles())
def test_every_shipped_gpu_profile_fits_with_room_for_a_batch(
    catalog: Catalog, variant_id: str, target: str
) -> None:
    variant = catalog.variants[variant_id]
    estimate = check_fit(variant, target, variant.engines[target], catalog.gpus)
    assert estimate is not None
    assert estimate.fits
    assert estimate.required_gb <= estimate.available_gb
    # At least a few full-length sequences fit in the KV budget.
    assert estimate.full_length_sequences >= 3


def test_27b_bf16_on_one_l4_is_refused_with_the_numbers(catalog: Catalog) -> None:
    variant = catalog.variants["gemma-3-27b-it"]
    with pytest.raises(FitError) as caught:
        check_fit(variant, "nvidia-l4", engine(max_model_len=32768), catalog.gpus)
    message = str(caught.value)
    assert "gemma-3-27b-it does not fit nvidia-l4" in message
    assert "weights 54.8 GB at bf16" in message
    assert "offers 21.6 GB per GPU (24 GB x gpu_memory_utilization 0.9)" in message


@pytest.mark.parametrize(
    ("variant_id", "target", "fields", "fits"),
    [
        ("gemma-3-27b-it", "nvidia-l4", {"tensor_parallel_size": 2}, False),  # 27.4 GB/GPU bf16
        ("gemma-3-27b-it", "nvidia-l4", {"quantization": "fp8", "tensor_parallel_size": 2}, True),
        ("gemma-3-27b-it", "nvidia-a100-80gb", {}, True),  # 54.8 + KV on 72 GB
        ("gemma-3-27b-it", "nvidia-h100-80gb", {"max_model_len": 131072}, True),
        ("gemma-3-12b-it", "nvidia-l4", {}, False),  # 24.4 GB of bf16 weights
        ("gemma-3-12b-it", "nvidia-l4", {"quantization": "fp8"}, True),
        ("gemma-3-12b-it", "nvidia-l4", {"tensor_parallel_size": 2}, True),
        ("gemma-3-4b-it", "nvidia-l4", {"max_model_len": 131072}, True),
        ("gemma-3n-E4B-it", "nvidia-l4", {"gpu_memory_utilization": 0.7}, False),
        ("gemma-3-1b-it", "nvidia-l4", {}, True),
    ],
)
def test_fit_decisions(
    catalog: Catalog, variant_id: str, target: str, fields: dict[str, Any], fits: bool
) -> None:
    variant = catalog.variants[variant_id]
    profile = engine(**{"max_model_len": 32768, **fields})
    if fits:
        assert check_fit(variant, target, profile, catalog.gpus) is not None
    else:
        with pytest.raises(FitError, match=f"{variant_id} does not fit {target}"):
            check_fit(variant, target, profile, catalog.gpus)


def test_tensor_parallel_must_divide_the_attention_heads(catalog: Catalog) -> None:
    variant = catalog.variants["gemma-3-4b-it"]  # 8 heads
    with pytest.raises(FitError, match="tensor_parallel_size 3 does not divide its 8"):
        check_fit(
            variant, "nvidia-l4", engine(max_model_len=8192, tensor_parallel_size=3), catalog.gpus
        )


def test_kv_is_sharded_only_as_far_as_there_are_kv_heads(catalog: Catalog) -> None:
    variant = catalog.variants["gemma-3-1b-it"]  # one KV head: every GPU holds the whole cache
    one = check_fit(variant, "nvidia-l4", engine(max_model_len=32768), catalog.gpus)
    two = check_fit(
        variant, "nvidia-l4", engine(max_model_len=32768, tensor_parallel_size=2), catalog.gpus
    )
    assert one is not None
    assert two is not None
    assert two.min_kv_gb == pytest.approx(one.min_kv_gb)
    assert two.weights_gb == pytest.approx(one.weights_gb / 2)


def test_cpu_kv_cache_must_hold_one_sequence(catalog: Catalog) -> None:
    variant = catalog.variants["gemma-3-4b-it"]  # 6 global layers x 4 KV heads x 256 x fp32
    cpu = engine(max_model_len=32768, dtype="float32", cpu_kv_cache_gb=1)
    with pytest.raises(FitError, match=r"needs .* GB of KV cache but cpu_kv_cache_gb is 1"):
        check_fit(variant, CPU, cpu, catalog.gpus)
    assert check_fit(variant, CPU, cpu.model_copy(update={"max_model_len": 4096}), {}) is None


def test_unknown_gpu_target(catalog: Catalog) -> None:
    with pytest.raises(FitError, match="unknown target 'nvidia-t4'"):
        check_fit(catalog.variants["gemma-3-1b-it"], "nvidia-t4", engine(max_model_len=1024), {})


def test_loading_a_catalog_checks_every_fit(catalog: Catalog) -> None:
    data = to_data(catalog)
    data["variants"]["gemma-3-27b-it"]["engines"]["nvidia-l4"] = {
        "max_model_len": 32768,
        "max_num_seqs": 8,
    }
    with pytest.raises(ValidationError, match="gemma-3-27b-it does not fit nvidia-l4"):
        Catalog.model_validate(data)


def test_estimate_reports_concurrency(catalog: Catalog) -> None:
    variant = catalog.variants["gemma-3-12b-it"]
    estimate = check_fit(variant, "nvidia-l4", variant.engines["nvidia-l4"], catalog.gpus)
    assert estimate is not None
    assert estimate.kv_budget_gb == pytest.approx(21.6 - 12.2 - 1.5)
    assert math.isclose(estimate.full_length_sequences, estimate.kv_budget_gb / estimate.min_kv_gb)
