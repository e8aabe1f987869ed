"""The variant catalog: every Gemma variant we serve, its engine profiles and deployment profiles.

The catalog is a YAML file (``serving/catalog.yaml`` by default; ``--catalog FILE`` or
``$GEMMA_SERVING_CATALOG`` choose another) validated into the models below::

    Catalog
    ├── gpus:        GPU types of the GKE node pools (memory, Ray accelerator type)
    ├── deployment:  Serve defaults for every engine (health checks, graceful shutdown)
    ├── variants:    id -> Variant (weights, capabilities, context, parsers, adapters,
    │                 │              MTP draft)
    │                 └── engines: target ("cpu" or a GPU type) -> EngineProfile
    └── profiles:    name -> Profile (a target plus the variants deployed on it)

Loading a catalog checks that every engine profile fits its GPU (``serving.memory``),
that test fixtures only run on the CPU, and that every profile can be built.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from serving.memory import (
    AttentionShape,
    FitError,
    MemoryEstimate,
    estimate_gpu,
    kv_cache_gb,
    weights_gb,
)
from serving.models.store import FIXTURE_SCHEME

CPU = "cpu"
CATALOG_ENV = "GEMMA_SERVING_CATALOG"
TEMPLATES_PACKAGE = "serving.templates"

Capability = Literal[
    "text",
    "vision",
    "audio",
    "video",
    "tools",
    "reasoning",
    "transcription",
    "embeddings",
    "moderation",
    "image_moderation",
]
# transcription: vLLM's speech-to-text endpoint (/v1/audio/transcriptions) serves the
# model; other audio models transcribe through their chat API (see gateway.api.audio).
# embeddings: vLLM's pooling runner serves /v1/embeddings (and no generation at all).
# moderation: a safety classifier (ShieldGemma) scored from its Yes/No token probabilities
# (gateway.moderation); it serves /v1/moderations and the guard, never chat.
# image_moderation: the same for images (ShieldGemma 2): /v1/moderations' image parts.
CAPABILITIES: tuple[Capability, ...] = get_args(Capability)
#: The policy families of the safety classifiers: ShieldGemma (text, on Gemma 2) and
#: ShieldGemma 2 (images, on Gemma 3), each with the capability it serves. The gateway
#: holds their prompts and categories (gateway.moderation.policies).
ModerationPolicy = Literal["shieldgemma", "shieldgemma2"]
POLICY_CAPABILITY: dict[str, Capability] = {
    "shieldgemma": "moderation",
    "shieldgemma2": "image_moderation",
}
# vLLM's multimodal item names and the capability each one needs.
MODALITY_CAPABILITY: dict[str, Capability] = {"image": "vision", "audio": "audio", "video": "video"}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GpuType(_Model):
    """A GPU type a GKE node pool offers."""

    memory_gb: float = Field(gt=0)
    ray_accelerator_type: str
    description: str = ""


class Architecture(_Model):
    """The attention shape of a variant, used to size its KV cache.

    ``num_kv_heads`` and ``head_dim`` describe the local (sliding-window) layers and, unless
    ``global_kv_heads`` / ``global_head_dim`` say otherwise, the global ones too (Gemma 4's
    global layers are wider and, with K=V attention, have fewer KV heads).
    """

    num_layers: int = Field(gt=0)
    num_attention_heads: int = Field(gt=0)
    num_kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    sliding_window: int = Field(gt=0)
    global_every: int = Field(gt=0, description="Every Nth layer attends globally.")
    kv_shared_layers: int = Field(default=0, ge=0)
    global_head_dim: int | None = Field(default=None, gt=0, description="Defaults to head_dim.")
    global_kv_heads: int | None = Field(default=None, gt=0, description="Defaults to num_kv_heads.")

    @model_validator(mode="after")
    def _layers(self) -> Architecture:
        if self.kv_shared_layers >= self.num_layers:
            raise ValueError(
                f"kv_shared_layers ({self.kv_shared_layers}) must leave some of the "
                f"{self.num_layers} layers with a KV cache of their own"
            )
        return self

    def shape(self) -> AttentionShape:
        return AttentionShape(**self.model_dump())


class Autoscaling(_Model):
    """Ray Serve autoscaling for one variant's engine deployment."""

    min_replicas: int = Field(default=1, ge=0)
    max_replicas: int = Field(default=1, ge=1)
    target_ongoing_requests: float = Field(default=16, gt=0)
    initial_replicas: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas ({self.min_replicas}) > max_replicas ({self.max_replicas})"
            )
        return self


class DeploymentSettings(_Model):
    """Serve deployment options shared by every engine: health checks and shutdown."""

    health_check_period_s: float = Field(default=10, gt=0)
    health_check_timeout_s: float = Field(default=30, gt=0)
    graceful_shutdown_wait_loop_s: float = Field(default=2, gt=0)
    graceful_shutdown_timeout_s: float = Field(default=60, gt=0)
    max_ongoing_requests: int | None = Field(default=None, gt=0)


class Speculative(_Model):
    """Speculative decoding with the variant's MTP draft (vLLM ``speculative_config``).

    Gemma 4's MTP drafts are ``-assistant`` checkpoints that vLLM runs as ``Gemma4MTPModel``
    on the target's KV cache; ``method: mtp`` names that path and the draft's weights source
    comes from the variant's ``mtp_draft``. The assistant predicts one token per pass, so
    more speculative tokens run it again.
    """

    method: Literal["mtp"] = "mtp"
    num_speculative_tokens: int = Field(default=1, ge=1, le=8)


class EngineProfile(_Model):
    """How one variant runs on one target: vLLM engine arguments and resources."""

    source: str | None = Field(default=None, description="Overrides the variant's weights source.")
    tensor_parallel_size: int = Field(default=1, ge=1)
    max_model_len: int = Field(gt=0)
    max_num_seqs: int = Field(gt=0)
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "bfloat16"
    quantization: Literal["fp8"] | None = None
    kv_cache_dtype: Literal["auto", "fp8"] = "auto"
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=0.98)
    enforce_eager: bool = False
    cpu_kv_cache_gb: float | None = Field(
        default=None, gt=0, description="KV cache size in GiB (CPU target only)."
    )
    # Items per prompt; a video may also name its frames: {video: {count: 1, num_frames: 4}}.
    limit_mm_per_prompt: dict[str, int | dict[str, int]] | None = None
    speculative: Speculative | None = Field(
        default=None, description="MTP speculative decoding (GPU targets, needs mtp_draft)."
    )
    autoscaling: Autoscaling | None = None
    stream_batching_interval_ms: int | None = Field(
        default=None,
        ge=0,
        description=(
            "How often the engine replica sends a stream's tokens on (Ray Serve LLM's "
            "stream_batching_interval_ms; default 50, 0 every token alone)."
        ),
    )
    engine_kwargs: dict[str, Any] = Field(default_factory=dict)

    @property
    def weight_precision(self) -> str:
        if self.quantization is not None:
            return self.quantization
        return self.unquantized_precision

    @property
    def unquantized_precision(self) -> str:
        """What layers quantization leaves alone (embedding tables) are stored as."""
        return "fp32" if self.dtype == "float32" else "bf16"

    @property
    def kv_bytes(self) -> float:
        if self.kv_cache_dtype == "fp8":
            return 1.0
        return 4.0 if self.dtype == "float32" else 2.0


class Adapter(_Model):
    """A LoRA adapter served as the extra model id ``<variant>:<name>``."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    source: str = Field(description="local:/fixture: name, a directory, or a hub id.")
    targets: tuple[str, ...] | None = Field(
        default=None, description="Only these targets (all if unset)."
    )

    def serves(self, target: str) -> bool:
        return self.targets is None or target in self.targets


class MtpDraft(_Model):
    """A variant's multi-token-prediction draft model (Gemma 4: its ``-assistant``)."""

    hf_id: str
    source: str | None = Field(default=None, description="Weights to load; defaults to hf_id.")
    params_b: float = Field(gt=0, description="Its parameters, in billions (loaded at bf16).")

    @property
    def weights_source(self) -> str:
        return self.source or self.hf_id


# engine_kwargs that have a field of their own, which the catalog checks and sizes.
_FIELD_KWARGS = {
    "speculative_config": "the engine profile's speculative",
    "reasoning_parser": "the variant's reasoning_parser",
}


class Variant(_Model):
    """One servable Gemma variant (or a clearly named test fixture)."""

    id: str
    kind: Literal["model", "fixture"] = "model"
    description: str = ""
    hf_id: str | None = None
    source: str | None = Field(default=None, description="Weights to load; defaults to hf_id.")
    params_b: float = Field(gt=0, description="Parameters vLLM loads, in billions (a MoE's total).")
    active_params_b: float | None = Field(
        default=None, gt=0, description="A mixture of experts' parameters active per token."
    )
    embedding_params_b: float = Field(
        default=0,
        ge=0,
        description="Of params_b, embedding tables (token and per-layer): kept at bf16 by "
        "vLLM's online quantization.",
    )
    capabilities: frozenset[Capability]
    context_length: int = Field(gt=0)
    architecture: Architecture
    chat_template: str | None = Field(default=None, description="Template in serving/templates.")
    chat_template_kwargs: dict[str, Any] = Field(default_factory=dict)
    tool_call_parser: str | None = None
    reasoning_parser: str | None = Field(
        default=None, description="vLLM reasoning parser (goes with 'reasoning')."
    )
    mtp_draft: MtpDraft | None = None
    moderation_policy: ModerationPolicy | None = Field(
        default=None, description="The classifier's policy family (goes with 'moderation')."
    )
    adapters: tuple[Adapter, ...] = ()
    max_lora_rank: int = Field(default=16, gt=0)
    autoscaling: Autoscaling = Autoscaling()
    engines: dict[str, EngineProfile]

    @model_validator(mode="after")
    def _consistent(self) -> Variant:
        self._check_capabilities()
        self._check_params()
        self._check_sources()
        if self.chat_template is not None:
            try:
                chat_template_text(self.chat_template)
            except OSError as exc:
                raise ValueError(f"{self.id}: chat template {self.chat_template!r}: {exc}") from exc
        self._check_adapters()
        for target, engine in self.engines.items():
            self._check_engine(target, engine)
        return self

    def _check_capabilities(self) -> None:
        if "embeddings" in self.capabilities:
            if self.capabilities != {"embeddings"}:
                raise ValueError(f"{self.id}: an embedding model serves 'embeddings' only")
        elif self.capabilities & set(POLICY_CAPABILITY.values()):
            if len(self.capabilities) != 1:
                raise ValueError(
                    f"{self.id}: a safety classifier serves 'moderation' or 'image_moderation' only"
                )
        elif "text" not in self.capabilities:
            raise ValueError(f"{self.id}: every generating variant serves 'text'")
        if ("tools" in self.capabilities) != (self.tool_call_parser is not None):
            raise ValueError(f"{self.id}: 'tools' and tool_call_parser go together")
        if ("reasoning" in self.capabilities) != (self.reasoning_parser is not None):
            raise ValueError(f"{self.id}: 'reasoning' and reasoning_parser go together")
        policy = self.moderation_policy
        if policy is None and self.capabilities & set(POLICY_CAPABILITY.values()):
            raise ValueError(f"{self.id}: a safety classifier names its moderation_policy")
        if policy is not None and POLICY_CAPABILITY[policy] not in self.capabilities:
            raise ValueError(
                f"{self.id}: moderation_policy {policy!r} goes with '{POLICY_CAPABILITY[policy]}'"
            )

    def _check_sources(self) -> None:
        if self.kind == "model" and self.hf_id is None:
            raise ValueError(f"{self.id}: a model needs its hf_id")
        if self.kind == "fixture" and (set(self.engines) - {CPU} or not self._fixture_source()):
            raise ValueError(f"{self.id}: a test fixture loads a fixture: source, on cpu only")
        if self.kind == "model" and any(
            (self.source_for(t) or "").startswith(FIXTURE_SCHEME) for t in self.engines
        ):
            raise ValueError(f"{self.id}: fixture: sources belong to kind: fixture variants")
        if self.mtp_draft is not None and self.mtp_draft.weights_source.startswith(FIXTURE_SCHEME):
            raise ValueError(
                f"{self.id}: an mtp_draft only runs on GPU targets, where fixture: "
                f"sources cannot go"
            )

    def _check_params(self) -> None:
        if self.active_params_b is not None and self.active_params_b >= self.params_b:
            raise ValueError(
                f"{self.id}: active_params_b ({self.active_params_b:g}) is a mixture of "
                f"experts' share of params_b ({self.params_b:g}) and must be smaller"
            )
        if self.embedding_params_b >= self.params_b:
            raise ValueError(
                f"{self.id}: embedding_params_b ({self.embedding_params_b:g}) is part of "
                f"params_b ({self.params_b:g}) and must be smaller"
            )

    def _check_adapters(self) -> None:
        names = [a.name for a in self.adapters]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.id}: adapter names repeat: {names}")
        for adapter in self.adapters:
            if adapter.source.startswith(FIXTURE_SCHEME) and adapter.targets != (CPU,):
                raise ValueError(
                    f"{self.id}: fixture adapter {adapter.name!r} needs targets: [cpu]"
                )
            unknown = set(adapter.targets or ()) - set(self.engines)
            if unknown:
                raise ValueError(
                    f"{self.id}: adapter {adapter.name!r} names targets without "
                    f"an engine profile: {sorted(unknown)}"
                )

    def _check_engine(self, target: str, engine: EngineProfile) -> None:
        where = f"{self.id} on {target}"
        if engine.max_model_len > self.context_length:
            raise ValueError(
                f"{where}: max_model_len {engine.max_model_len} exceeds the "
                f"context length {self.context_length}"
            )
        if self.source_for(target) is None:
            raise ValueError(f"{where}: no weights source")
        for modality in self.mm_limits(target):
            needed = MODALITY_CAPABILITY.get(modality)
            if not self.takes(modality):
                raise ValueError(f"{where}: limit_mm_per_prompt[{modality!r}] needs {needed!r}")
        for key, field in _FIELD_KWARGS.items():
            if key in engine.engine_kwargs:
                raise ValueError(f"{where}: set {field}, not engine_kwargs[{key!r}]")
        if engine.speculative is not None:
            if target == CPU:
                raise ValueError(
                    f"{where}: speculative decoding is for GPU targets only "
                    f"(vLLM's MTP drafting runs on the GPU model runner)"
                )
            if self.mtp_draft is None:
                raise ValueError(
                    f"{where}: speculative needs the variant's mtp_draft (its MTP draft "
                    f"checkpoint, e.g. google/gemma-4-E2B-it-assistant), and {self.id} "
                    f"declares none"
                )

    def _fixture_source(self) -> bool:
        sources = {self.source_for(t) or "" for t in self.engines}
        return all(s.startswith(FIXTURE_SCHEME) for s in sources)

    def source_for(self, target: str) -> str | None:
        """The weights source an engine on ``target`` loads."""
        return self.engines[target].source or self.source or self.hf_id

    def mm_limits(self, target: str) -> dict[str, int | dict[str, int]]:
        """Multimodal items per prompt: the profile's, or one per served modality."""
        configured = self.engines[target].limit_mm_per_prompt
        if configured is not None:
            return dict(configured)
        return {m: 1 for m in MODALITY_CAPABILITY if self.takes(m)}

    def takes(self, modality: str) -> bool:
        """Whether the variant's prompts hold ``modality`` items (an image classifier: images)."""
        if modality == "image" and "image_moderation" in self.capabilities:
            return True
        return MODALITY_CAPABILITY.get(modality) in self.capabilities

    def adapters_for(self, target: str) -> list[Adapter]:
        return [a for a in self.adapters if a.serves(target)]

    def autoscaling_for(self, target: str) -> Autoscaling:
        return self.engines[target].autoscaling or self.autoscaling

    def memory_gb(self) -> dict[str, float]:
        """Approximate weight memory at bf16 and the quantized precisions.

        Embedding tables stay at bf16 when quantized, as vLLM keeps them.
        """
        return {
            p: round(weights_gb(self.params_b, p, embedding_params_b=self.embedding_params_b), 2)
            for p in ("bf16", "fp8", "int4")
        }

    def draft_params_b(self, engine: EngineProfile) -> float:
        """The MTP draft's parameters when ``engine`` speculates with it, else 0."""
        if engine.speculative is None or self.mtp_draft is None:
            return 0.0
        return self.mtp_draft.params_b


class Profile(_Model):
    """A named deployment: one target and the variants it serves.

    ``direct_streaming`` serves a one-variant profile with Ray Serve LLM's direct streaming:
    the engine replica is the HTTP ingress, behind Serve's HAProxy, so a streamed token
    crosses no Ray hop between the engine and the client (``serving.app``).
    """

    description: str = ""
    target: str
    variants: tuple[str, ...] = Field(min_length=1)
    direct_streaming: bool = False

    @model_validator(mode="after")
    def _direct_streaming_serves_one_variant(self) -> Profile:
        if self.direct_streaming and len(self.variants) != 1:
            raise ValueError(
                "direct_streaming serves exactly one variant (Ray Serve LLM's direct "
                f"streaming is one model per application), not {len(self.variants)}"
            )
        return self


class Catalog(_Model):
    """The whole catalog; constructing one validates every fit and profile."""

    gpus: dict[str, GpuType]
    deployment: DeploymentSettings = DeploymentSettings()
    variants: dict[str, Variant]
    profiles: dict[str, Profile] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _name_variants(cls, data: Any) -> Any:
        """Let YAML write variants as a mapping keyed by id."""
        if isinstance(data, dict) and isinstance(data.get("variants"), dict):
            variants = {}
            for key, value in data["variants"].items():
                if isinstance(value, dict):
                    if value.get("id", key) != key:
                        raise ValueError(f"variant {key!r} declares id {value['id']!r}")
                    value = {**value, "id": key}
                variants[key] = value
            data = {**data, "variants": variants}
        return data

    @model_validator(mode="after")
    def _check(self) -> Catalog:
        for variant in self.variants.values():
            for target, engine in variant.engines.items():
                check_fit(variant, target, engine, self.gpus)
        for name, profile in self.profiles.items():
            self._check_profile(name, profile)
        return self

    def _check_profile(self, name: str, profile: Profile) -> None:
        if profile.target != CPU and profile.target not in self.gpus:
            raise ValueError(f"profile {name!r}: unknown target {profile.target!r}")
        for variant_id in profile.variants:
            variant = self.variants.get(variant_id)
            if variant is None:
                raise ValueError(f"profile {name!r}: unknown variant {variant_id!r}")
            if profile.target not in variant.engines:
                raise ValueError(
                    f"profile {name!r}: {variant_id} has no engine profile for "
                    f"{profile.target!r} (it has: {', '.join(sorted(variant.engines))})"
                )

    def profile(self, name: str) -> Profile:
        try:
            return self.profiles[name]
        except KeyError:
            known = ", ".join(sorted(self.profiles)) or "none"
            raise KeyError(f"unknown profile {name!r} (known: {known})") from None

    def profile_variants(self, name: str) -> list[Variant]:
        return [self.variants[v] for v in self.profile(name).variants]

    def with_engine_kwargs(self, profile_name: str, extra: dict[str, Any]) -> Catalog:
        """This catalog with ``extra`` vLLM arguments on each of the profile's variants, on
        the profile's target. They go into ``engine_kwargs``, which ``serving.app`` applies
        last: they win over the engine's own fields too (``max_num_seqs``, ...)."""
        target = self.profile(profile_name).target
        variants = dict(self.variants)
        for variant in self.profile_variants(profile_name):
            engine = variant.engines[target]
            engine = engine.model_copy(update={"engine_kwargs": {**engine.engine_kwargs, **extra}})
            variants[variant.id] = variant.model_copy(
                update={"engines": {**variant.engines, target: engine}}
            )
        return Catalog(
            gpus=self.gpus, deployment=self.deployment, variants=variants, profiles=self.profiles
        )

    def subset(self, profile_name: str) -> Catalog:
        """A catalog holding one profile and only what it needs (for export)."""
        profile = self.profile(profile_name)
        variants = {}
        for variant_id in profile.variants:
            variant = self.variants[variant_id]
            engines = {profile.target: variant.engines[profile.target]}
            variants[variant_id] = variant.model_copy(update={"engines": engines})
        gpus = {k: v for k, v in self.gpus.items() if k == profile.target}
        return Catalog(
            gpus=gpus,
            deployment=self.deployment,
            variants=variants,
            profiles={profile_name: profile},
        )


def check_fit(
    variant: Variant, target: str, engine: EngineProfile, gpus: dict[str, GpuType]
) -> MemoryEstimate | None:
    """Raise ``FitError`` if ``engine`` cannot run ``variant`` on ``target``.

    Returns the per-GPU estimate for GPU targets, ``None`` for the CPU.
    """
    shape = variant.architecture.shape()
    if target == CPU:
        _check_cpu(variant, engine, shape)
        return None
    gpu = gpus.get(target)
    if gpu is None:
        raise FitError(f"{variant.id}: unknown target {target!r} (known: cpu, {', '.join(gpus)})")
    tp = engine.tensor_parallel_size
    _check_tensor_parallel(variant, target, tp, shape)
    estimate = estimate_gpu(
        shape=shape,
        params_b=variant.params_b,
        precision=engine.weight_precision,
        kv_bytes=engine.kv_bytes,
        max_model_len=engine.max_model_len,
        tensor_parallel_size=tp,
        gpu_memory_gb=gpu.memory_gb,
        gpu_memory_utilization=engine.gpu_memory_utilization,
        embedding_params_b=variant.embedding_params_b,
        embedding_precision=engine.unquantized_precision,
        draft_params_b=variant.draft_params_b(engine),
    )
    if not estimate.fits:
        raise FitError(_no_fit_message(variant, target, engine, gpu, estimate))
    return estimate


def _check_tensor_parallel(variant: Variant, target: str, tp: int, shape: AttentionShape) -> None:
    """vLLM's own conditions: heads split evenly, KV heads split or replicated evenly."""
    where = f"{variant.id} on {target}: tensor_parallel_size {tp}"
    if shape.num_attention_heads % tp:
        raise FitError(f"{where} does not divide its {shape.num_attention_heads} attention heads")
    for kind, kv in (("", shape.num_kv_heads), ("global ", shape.global_kv_head_count)):
        if (kv >= tp and kv % tp) or (kv < tp and tp % kv):
            raise FitError(f"{where} neither divides nor is a multiple of its {kv} {kind}KV heads")


def _no_fit_message(
    variant: Variant, target: str, engine: EngineProfile, gpu: GpuType, est: MemoryEstimate
) -> str:
    tp = engine.tensor_parallel_size
    draft = f", MTP draft {est.draft_gb:.1f} GB at bf16" if est.draft_gb else ""
    kept = ""
    if engine.quantization is not None and variant.embedding_params_b:
        kept = f" (embeddings at {engine.unquantized_precision})"
    return (
        f"{variant.id} does not fit {target}: it needs {est.required_gb:.1f} GB per GPU "
        f"(weights {est.weights_gb:.1f} GB at {engine.weight_precision}{kept} over "
        f"tensor_parallel_size {tp}{draft}, runtime {est.overhead_gb:.1f} GB, KV cache "
        f"{est.min_kv_gb:.1f} GB for one {engine.max_model_len}-token sequence) but "
        f"{tp} x {target} offers {est.available_gb:.1f} GB per GPU ({gpu.memory_gb:g} GB x "
        f"gpu_memory_utilization {engine.gpu_memory_utilization:g}). Quantize (fp8), raise "
        f"tensor_parallel_size or lower max_model_len."
    )


def _check_cpu(variant: Variant, engine: EngineProfile, shape: AttentionShape) -> None:
    if engine.tensor_parallel_size != 1 or engine.quantization is not None:
        raise FitError(f"{variant.id} on cpu: use tensor_parallel_size 1 and no quantization")
    if engine.cpu_kv_cache_gb is None:
        raise FitError(f"{variant.id} on cpu: set cpu_kv_cache_gb")
    needed = kv_cache_gb(shape, engine.max_model_len, engine.kv_bytes)
    if needed > engine.cpu_kv_cache_gb:
        raise FitError(
            f"{variant.id} on cpu: one {engine.max_model_len}-token sequence needs "
            f"{needed:.2f} GB of KV cache but cpu_kv_cache_gb is {engine.cpu_kv_cache_gb:g}"
        )


def to_data(catalog: Catalog) -> dict[str, Any]:
    """The catalog as plain YAML/JSON data that ``Catalog.model_validate`` reads back."""
    data = catalog.model_dump(mode="json", exclude_defaults=True)
    for variant in data.get("variants", {}).values():
        variant.pop("id", None)
        if "capabilities" in variant:
            variant["capabilities"] = sorted(variant["capabilities"], key=CAPABILITIES.index)
    return data


def default_catalog_path() -> Path:
    """``$GEMMA_SERVING_CATALOG`` if set, else the catalog shipped with the package."""
    configured = os.environ.get(CATALOG_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path(__file__).with_name("catalog.yaml")


def load_catalog(path: Path | str | None = None) -> Catalog:
    """Read and validate a catalog file (see ``default_catalog_path``)."""
    file = Path(path) if path is not None else default_catalog_path()
    with file.open(encoding="utf-8") as stream:
        data = yaml.safe_load(stream)
    return Catalog.model_validate(data)


def chat_template_text(name_or_path: str) -> str:
    """A template from ``serving/templates`` by name (``gemma3_tools``), or a file path."""
    if "/" in name_or_path or name_or_path.endswith(".jinja"):
        return Path(name_or_path).expanduser().read_text(encoding="utf-8")
    return resources.files(TEMPLATES_PACKAGE).joinpath(f"{name_or_path}.jinja").read_text("utf-8")
