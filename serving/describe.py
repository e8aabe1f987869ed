"""What ``gemma-serving catalog`` prints: the catalog as a summary (JSON) or a table.

Memory columns are weights only (embedding tables stay bf16 when quantized); the JSON's
per-engine rows add the fit check's per-GPU total and how many full-length sequences the
KV budget holds.
"""

from __future__ import annotations

from typing import Any

from serving.catalog import CAPABILITIES, CPU, Catalog, Variant, check_fit


def _engines(catalog: Catalog, variant: Variant) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for target, engine in variant.engines.items():
        row: dict[str, Any] = {
            "tensor_parallel_size": engine.tensor_parallel_size,
            "max_model_len": engine.max_model_len,
            "max_num_seqs": engine.max_num_seqs,
            "dtype": engine.dtype,
            "quantization": engine.quantization,
            "speculative_tokens": (
                engine.speculative.num_speculative_tokens if engine.speculative else None
            ),
        }
        estimate = check_fit(variant, target, engine, catalog.gpus)
        if estimate is not None:
            row["weights_gb"] = round(estimate.weights_gb + estimate.draft_gb, 1)
            row["per_gpu_gb"] = round(estimate.required_gb, 1)
            row["available_gb"] = round(estimate.available_gb, 1)
            row["full_length_sequences"] = round(estimate.full_length_sequences, 1)
        rows[target] = row
    return rows


def variant_summary(catalog: Catalog, variant: Variant) -> dict[str, Any]:
    return {
        "id": variant.id,
        "kind": variant.kind,
        "description": variant.description,
        "hf_id": variant.hf_id,
        "capabilities": [c for c in CAPABILITIES if c in variant.capabilities],
        "context_length": variant.context_length,
        "params_b": variant.params_b,
        "active_params_b": variant.active_params_b,
        "embedding_params_b": variant.embedding_params_b,
        "memory_gb": variant.memory_gb(),
        "tool_call_parser": variant.tool_call_parser,
        "reasoning_parser": variant.reasoning_parser,
        "mtp_draft": variant.mtp_draft.model_dump(exclude_none=True) if variant.mtp_draft else None,
        "adapters": [a.model_dump(exclude_none=True) for a in variant.adapters],
        "engines": _engines(catalog, variant),
    }


def summary(catalog: Catalog, profile: str | None = None) -> dict[str, Any]:
    """Variants (all, or one profile's) with capabilities, memory and engine profiles."""
    variants = catalog.profile_variants(profile) if profile else list(catalog.variants.values())
    profiles = {profile: catalog.profile(profile)} if profile else catalog.profiles
    return {
        "variants": [variant_summary(catalog, v) for v in variants],
        "profiles": {
            name: {"target": p.target, "variants": list(p.variants), "description": p.description}
            for name, p in profiles.items()
        },
        "gpus": {name: gpu.model_dump() for name, gpu in catalog.gpus.items()},
    }


def _context(tokens: int) -> str:
    return f"{tokens // 1024}K"


def _params(variant: dict[str, Any]) -> str:
    """Parameters loaded (a mixture of experts' total; its active ones get a line below)."""
    return f"{variant['params_b']:g}B"


def table(catalog: Catalog, profile: str | None = None) -> str:
    """A plain-text table of ``summary``."""
    data = summary(catalog, profile)
    lines = [
        f"{'VARIANT':<28} {'KIND':<8} {'CAPABILITIES':<39} {'CONTEXT':>7} {'PARAMS':>8} "
        f"{'BF16 GB':>8} {'FP8 GB':>7} {'INT4 GB':>8}  TARGETS"
    ]
    for v in data["variants"]:
        mem = v["memory_gb"]
        targets = ", ".join(sorted(v["engines"], key=lambda t: (t != CPU, t)))
        lines.append(
            f"{v['id']:<28} {v['kind']:<8} {','.join(v['capabilities']):<39} "
            f"{_context(v['context_length']):>7} {_params(v):>8} {mem['bf16']:>8} "
            f"{mem['fp8']:>7} {mem['int4']:>8}  {targets}"
        )
        if v["active_params_b"] is not None:
            lines.append(
                f"{'':<28} mixture of experts: {v['active_params_b']:g}B of "
                f"{v['params_b']:g}B parameters active per token (memory counts them all)"
            )
        if v["mtp_draft"] is not None:
            lines.append(f"{'':<28} MTP draft {v['mtp_draft']['hf_id']}")
        lines.extend(f"{'':<28} adapter {a['name']} <- {a['source']}" for a in v["adapters"])
    lines += ["", f"{'PROFILE':<12} {'TARGET':<18} VARIANTS"]
    for name, p in data["profiles"].items():
        lines.append(f"{name:<12} {p['target']:<18} {', '.join(p['variants'])}")
    return "\n".join(lines)
