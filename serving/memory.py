"""How much accelerator memory a Gemma engine needs, and whether it fits its GPU.

The estimate mirrors what vLLM allocates on each GPU of a tensor-parallel group:

    weights / tp  +  runtime overhead  +  KV cache for one full-length sequence
        <=  gpu memory * gpu_memory_utilization

vLLM refuses to start when the KV cache cannot hold one ``max_model_len`` sequence, so
that is the floor; whatever is left over is the KV budget that sets concurrency.
Gemma's sliding-window layers only keep ``sliding_window`` tokens, so only the global
(full-attention) layers grow with the context length. Gemma 4's global layers have their
own shape (``global_head_dim``, ``global_kv_heads``), so each layer type is sized apart,
and each is split over the tensor-parallel group as vLLM splits it: ``kv_heads / tp``
heads per GPU, or the whole (replicated) set when there are fewer KV heads than GPUs.

Weights: online quantization (``quantization: fp8``) only converts linear layers and MoE
experts; vLLM keeps embedding tables (Gemma 4's per-layer embeddings are billions of
parameters) at the checkpoint dtype, so ``embedding_params_b`` stays at bf16. An MTP draft
model (speculative decoding) adds its own weights, loaded unquantized and, conservatively,
whole on every GPU; it reads the target's KV cache and adds none of its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

GB = 1e9

# Bytes per parameter for each weight precision.
BYTES_PER_PARAM: dict[str, float] = {"fp32": 4.0, "bf16": 2.0, "fp8": 1.0, "int4": 0.5}

# Precisions vLLM reaches by (online) quantization: embeddings keep the checkpoint dtype.
QUANTIZED = frozenset({"fp8", "int4"})

# CUDA context, activations, sampler buffers and CUDA graphs, per GPU.
RUNTIME_OVERHEAD_GB = 1.5


class FitError(ValueError):
    """An engine profile cannot run on the accelerator it names."""


@dataclass(frozen=True, kw_only=True)
class AttentionShape:
    """The few numbers of a model's attention stack that size its KV cache."""

    num_layers: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    sliding_window: int
    global_every: int
    kv_shared_layers: int = 0
    global_head_dim: int | None = None
    global_kv_heads: int | None = None

    @property
    def global_head_size(self) -> int:
        """Head dimension of the global layers (Gemma 4: wider than the local ones)."""
        return self.global_head_dim or self.head_dim

    @property
    def global_kv_head_count(self) -> int:
        """KV heads of the global layers (Gemma 4 with K=V: fewer than the local ones)."""
        return self.global_kv_heads or self.num_kv_heads

    @property
    def kv_layers(self) -> int:
        """Layers that own a KV cache (Gemma 3n's last layers reuse earlier ones)."""
        return self.num_layers - self.kv_shared_layers

    @property
    def global_layers(self) -> int:
        return math.ceil(self.kv_layers / self.global_every)

    @property
    def local_layers(self) -> int:
        return self.kv_layers - self.global_layers


def weights_gb(
    params_b: float,
    precision: str,
    *,
    embedding_params_b: float = 0.0,
    embedding_precision: str = "bf16",
) -> float:
    """Weight memory in GB for ``params_b`` billion parameters at ``precision``.

    ``embedding_params_b`` of them stay at ``embedding_precision`` when ``precision`` is a
    quantized one (vLLM quantizes linear layers and experts, not embedding tables).
    """
    if precision in QUANTIZED and embedding_params_b:
        dense = params_b - embedding_params_b
        return dense * BYTES_PER_PARAM[precision] + weights_gb(
            embedding_params_b, embedding_precision
        )
    return params_b * BYTES_PER_PARAM[precision]


def kv_heads_per_gpu(kv_heads: int, tensor_parallel_size: int) -> int:
    """vLLM's split of KV heads: ``kv_heads / tp`` each, replicated when fewer than GPUs."""
    return max(1, kv_heads // tensor_parallel_size)


def kv_cache_gb(
    shape: AttentionShape, seq_len: int, kv_bytes: float, tensor_parallel_size: int = 1
) -> float:
    """KV cache in GB for one sequence of ``seq_len`` tokens, per GPU of a TP group.

    With ``tensor_parallel_size`` 1 that is the whole cache.
    """
    tp = tensor_parallel_size
    local = 2 * kv_heads_per_gpu(shape.num_kv_heads, tp) * shape.head_dim * kv_bytes
    glob = 2 * kv_heads_per_gpu(shape.global_kv_head_count, tp) * shape.global_head_size * kv_bytes
    local_tokens = shape.local_layers * min(seq_len, shape.sliding_window)
    return (local * local_tokens + glob * shape.global_layers * seq_len) / GB


@dataclass(frozen=True, kw_only=True)
class MemoryEstimate:
    """Per-GPU memory of one engine replica, in GB."""

    weights_gb: float
    overhead_gb: float
    min_kv_gb: float
    available_gb: float
    draft_gb: float = 0.0

    @property
    def required_gb(self) -> float:
        return self.weights_gb + self.draft_gb + self.overhead_gb + self.min_kv_gb

    @property
    def kv_budget_gb(self) -> float:
        """What vLLM can hand to the KV cache once weights and overhead are placed."""
        return self.available_gb - self.weights_gb - self.draft_gb - self.overhead_gb

    @property
    def full_length_sequences(self) -> float:
        """How many ``max_model_len`` sequences the KV budget holds at once."""
        return self.kv_budget_gb / self.min_kv_gb if self.min_kv_gb else math.inf

    @property
    def fits(self) -> bool:
        return self.required_gb <= self.available_gb


def estimate_gpu(
    *,
    shape: AttentionShape,
    params_b: float,
    precision: str,
    kv_bytes: float,
    max_model_len: int,
    tensor_parallel_size: int,
    gpu_memory_gb: float,
    gpu_memory_utilization: float,
    embedding_params_b: float = 0.0,
    embedding_precision: str = "bf16",
    draft_params_b: float = 0.0,
) -> MemoryEstimate:
    """Per-GPU memory estimate for one replica spread over ``tensor_parallel_size`` GPUs.

    ``params_b`` is every parameter vLLM loads (a MoE's total, not its active ones);
    ``draft_params_b`` is the MTP draft model's, counted at bf16 on every GPU.
    """
    weights = weights_gb(
        params_b,
        precision,
        embedding_params_b=embedding_params_b,
        embedding_precision=embedding_precision,
    )
    return MemoryEstimate(
        weights_gb=weights / tensor_parallel_size,
        overhead_gb=RUNTIME_OVERHEAD_GB,
        min_kv_gb=kv_cache_gb(shape, max_model_len, kv_bytes, tensor_parallel_size),
        available_gb=gpu_memory_gb * gpu_memory_utilization,
        draft_gb=weights_gb(draft_params_b, "bf16"),
    )
