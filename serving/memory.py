"""How much accelerator memory a Gemma engine needs, and whether it fits its GPU.

The estimate mirrors what vLLM allocates on each GPU of a tensor-parallel group:

    weights / tp  +  runtime overhead  +  KV cache for one full-length sequence
        <=  gpu memory * gpu_memory_utilization

vLLM refuses to start when the KV cache cannot hold one ``max_model_len`` sequence, so
that is the floor; whatever is left over is the KV budget that sets concurrency.
Gemma's sliding-window layers only keep ``sliding_window`` tokens, so only the global
(full-attention) layers grow with the context length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

GB = 1e9

# Bytes per parameter for each weight precision.
BYTES_PER_PARAM: dict[str, float] = {"fp32": 4.0, "bf16": 2.0, "fp8": 1.0, "int4": 0.5}

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


def weights_gb(params_b: float, precision: str) -> float:
    """Weight memory in GB for ``params_b`` billion parameters at ``precision``."""
    return params_b * BYTES_PER_PARAM[precision]


def kv_cache_gb(shape: AttentionShape, seq_len: int, kv_bytes: float) -> float:
    """KV cache in GB for one sequence of ``seq_len`` tokens (all GPUs together)."""
    per_token_layer = 2 * shape.num_kv_heads * shape.head_dim * kv_bytes
    tokens = shape.global_layers * seq_len + shape.local_layers * min(seq_len, shape.sliding_window)
    return per_token_layer * tokens / GB


@dataclass(frozen=True, kw_only=True)
class MemoryEstimate:
    """Per-GPU memory of one engine replica, in GB."""

    weights_gb: float
    overhead_gb: float
    min_kv_gb: float
    available_gb: float

    @property
    def required_gb(self) -> float:
        return self.weights_gb + self.overhead_gb + self.min_kv_gb

    @property
    def kv_budget_gb(self) -> float:
        """What vLLM can hand to the KV cache once weights and overhead are placed."""
        return self.available_gb - self.weights_gb - self.overhead_gb

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
) -> MemoryEstimate:
    """Per-GPU memory estimate for one replica spread over ``tensor_parallel_size`` GPUs."""
    kv_shards = min(tensor_parallel_size, shape.num_kv_heads)
    return MemoryEstimate(
        weights_gb=weights_gb(params_b, precision) / tensor_parallel_size,
        overhead_gb=RUNTIME_OVERHEAD_GB,
        min_kv_gb=kv_cache_gb(shape, max_model_len, kv_bytes) / kv_shards,
        available_gb=gpu_memory_gb * gpu_memory_utilization,
    )
