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


# --- Gemma 4 ---------------------------------------------------------------------------

GEMMA_4 = [
    "gemma-4-E2B-it",
    "gemma-4-E4B-it",
    "gemma-4-12B-it",
    "gemma-4-26B-A4B-it",
    "gemma-4-31B-it",
]
CONFIGS = {
    "bf16": {},
    "fp8": {"quantization": "fp8"},
    "bf16/tp2": {"tensor_parallel_size": 2},
    "fp8/tp2": {"quantization": "fp8", "tensor_parallel_size": 2},
    "bf16/tp4": {"tensor_parallel_size": 4},
    "fp8/tp4": {"quantization": "fp8", "tensor_parallel_size": 4},
}
_ALL = set(CONFIGS)
_80GB = {
    "gemma-4-E2B-it": _ALL,
    "gemma-4-E4B-it": _ALL,
    "gemma-4-12B-it": _ALL,
    "gemma-4-26B-A4B-it": _ALL,  # 57.7 GB of bf16 experts leave ~13 GB of KV cache
    "gemma-4-31B-it": _ALL - {"bf16"},  # 69.9 GB of bf16 weights leave no room
}
# What fits each GPU at a 32K context with the MTP draft loaded (the docs' table).
FITS_32K = {
    "nvidia-l4": {
        "gemma-4-E2B-it": _ALL,
        "gemma-4-E4B-it": _ALL,  # bf16 on one L4 only just: three 32K sequences
        "gemma-4-12B-it": _ALL - {"bf16"},
        "gemma-4-26B-A4B-it": {"fp8/tp2", "bf16/tp4", "fp8/tp4"},
        "gemma-4-31B-it": {"bf16/tp4", "fp8/tp4"},
    },
    "nvidia-a100-80gb": _80GB,
    "nvidia-h100-80gb": _80GB,
}


def gemma_4_engine(config: str, max_model_len: int = 32768) -> EngineProfile:
    return engine(
        max_model_len=max_model_len,
        speculative={"num_speculative_tokens": 1},
        **CONFIGS[config],
    )


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("target", FITS_32K)
@pytest.mark.parametrize("variant_id", GEMMA_4)
def test_gemma_4_fit_table(catalog: Catalog, variant_id: str, target: str, config: str) -> None:
    variant = catalog.variants[variant_id]
    profile = gemma_4_engine(config)
    if config in FITS_32K[target][variant_id]:
        estimate = check_fit(variant, target, profile, catalog.gpus)
        assert estimate is not None
        assert estimate.required_gb <= estimate.available_gb
    else:
        with pytest.raises(FitError, match=f"{variant_id} does not fit {target}"):
            check_fit(variant, target, profile, catalog.gpus)


def test_31b_bf16_on_one_l4_is_refused_with_the_numbers(catalog: Catalog) -> None:
    variant = catalog.variants["gemma-4-31B-it"]
    with pytest.raises(FitError) as caught:
        check_fit(variant, "nvidia-l4", gemma_4_engine("bf16"), catalog.gpus)
    message = str(caught.value)
    assert "gemma-4-31B-it does not fit nvidia-l4" in message
    assert "weights 69.9 GB at bf16 over tensor_parallel_size 1" in message
    assert "MTP draft 1.0 GB at bf16" in message
    assert "offers 21.6 GB per GPU" in message


def test_fp8_keeps_the_embedding_tables_at_bf16(catalog: Catalog) -> None:
    variant = catalog.variants["gemma-4-E2B-it"]  # 2.75B of its 5.7B are (per-layer) embeddings
    estimate = check_fit(variant, "nvidia-l4", gemma_4_engine("fp8"), catalog.gpus)
    assert estimate is not None
    assert estimate.weights_gb == pytest.approx((5.7 - 2.75) * 1 + 2.75 * 2)
    assert weights_gb(5.7, "fp8") == pytest.approx(5.7)  # without embeddings: all at fp8
    with pytest.raises(FitError, match=r"at fp8 \(embeddings at bf16\)"):
        check_fit(
            variant,
            "nvidia-l4",
            gemma_4_engine("fp8", 131072).model_copy(update={"gpu_memory_utilization": 0.4}),
            catalog.gpus,
        )


def test_a_mixture_of_experts_needs_memory_for_every_expert(catalog: Catalog) -> None:
    moe = catalog.variants["gemma-4-26B-A4B-it"]
    assert moe.active_params_b == 3.8
    estimate = check_fit(moe, "nvidia-h100-80gb", moe.engines["nvidia-h100-80gb"], catalog.gpus)
    assert estimate is not None
    assert estimate.weights_gb == pytest.approx(weights_gb(moe.params_b, "bf16"))  # 57.7, not 7.6
    # Were only the active parameters loaded it would fit one L4 at bf16; it does not.
    with pytest.raises(FitError, match=r"weights 57\.7 GB at bf16"):
        check_fit(moe, "nvidia-l4", gemma_4_engine("bf16"), catalog.gpus)


def test_the_mtp_draft_counts_only_when_the_engine_speculates(catalog: Catalog) -> None:
    variant = catalog.variants["gemma-4-31B-it"]
    with_draft = check_fit(variant, "nvidia-h100-80gb", gemma_4_engine("fp8"), catalog.gpus)
    without = check_fit(
        variant, "nvidia-h100-80gb", engine(max_model_len=32768, quantization="fp8"), catalog.gpus
    )
    assert with_draft is not None
    assert without is not None
    assert with_draft.draft_gb == pytest.approx(1.0)  # 0.5B at bf16
    assert without.draft_gb == 0
    assert with_draft.min_kv_gb == without.min_kv_gb  # the draft reads the target's cache
    assert with_draft.kv_budget_gb == pytest.approx(without.kv_budget_gb - 1.0)


def test_the_a100_has_no_fp8_compute_so_no_shipped_engine_uses_it(catalog: Catalog) -> None:
    for variant in catalog.variants.values():
        a100 = variant.engines.get("nvidia-a100-80gb")
        if a100 is not None:
            assert (a100.quantization, a100.kv_cache_dtype) == (None, "auto"), variant.id


def test_gemma_4_global_layers_have_their_own_kv_shape() -> None:
    # The 31B: 50 local layers x 16 KV heads x 256, 10 global layers x 4 KV heads x 512.
    shape = AttentionShape(
        num_layers=60,
        num_attention_heads=32,
        num_kv_heads=16,
        head_dim=256,
        sliding_window=1024,
        global_every=6,
        global_head_dim=512,
        global_kv_heads=4,
    )
    local = 2 * 16 * 256 * 2 * 50 * 1024
    glob = 2 * 4 * 512 * 2 * 10 * 262144
    assert kv_cache_gb(shape, 262144, 2) == pytest.approx((local + glob) / 1e9)  # 22.3 GB
    # Over 8 GPUs: 2 local KV heads each, the 4 global ones replicated to one per GPU.
    per_gpu = (local / 8 + glob / 4) / 1e9
    assert kv_cache_gb(shape, 262144, 2, tensor_parallel_size=8) == pytest.approx(per_gpu)


def test_shared_kv_layers_and_the_last_global_layer_of_e2b(catalog: Catalog) -> None:
    shape = catalog.variants["gemma-4-E2B-it"].architecture.shape()
    # 35 layers, the last 20 reuse earlier caches; 4 local : 1 global among the other 15.
    assert (shape.kv_layers, shape.global_layers, shape.local_layers) == (15, 3, 12)
    assert (shape.global_head_size, shape.global_kv_head_count) == (512, 1)


def test_global_kv_heads_must_split_evenly_over_the_gpus(catalog: Catalog) -> None:
    variant = catalog.variants["gemma-4-26B-A4B-it"]
    odd = variant.architecture.model_copy(
        update={"num_attention_heads": 24, "num_kv_heads": 12, "global_kv_heads": 8}
    )
    edited = variant.model_copy(update={"architecture": odd})
    with pytest.raises(
        FitError,
        match="tensor_parallel_size 12 neither divides nor is a multiple of its 8 global KV heads",
    ):
        check_fit(
            edited,
            "nvidia-h100-80gb",
            engine(max_model_len=8192, tensor_parallel_size=12),
            catalog.gpus,
        )
