"""Ray Data LLM engines for batch jobs.

``VllmProcessorEngine`` (the default) builds a Ray Data LLM ``vLLMEngineProcessorConfig``
per variant from the same catalog data as serving (``serving.app.llm_config_data``: engine
arguments, the CPU backend's environment and KV cache size), so a batch runs the engine
profile that serves online, and needs nothing running beforehand. Variants run one after
another: one engine in memory at a time.

``ServeProcessorEngine`` sends the requests to the engine deployments of a Serve
application that is already up (``ServeDeploymentProcessorConfig``); it shares those
engines with online traffic, so it is the choice when a cluster is serving anyway: its
requests carry the ``batch`` class's engine priority (``gateway.priority``), so live
traffic is scheduled first. Its ``abort`` cancels the requests in flight on those
engines (``batch.serve_stage``).

Pipeline per variant: ``from_items`` -> ``PromptRenderer`` (chat template, images) ->
the vLLM stage (Ray Data LLM's own chat template and tokenizer stages are off: rows carry
either chat messages or a completion prompt, and vLLM tokenizes and detokenizes itself).
Failed rows come back with ``__inference_error__`` (``should_continue_on_error``). The
builder's own imports run beside the driver's ``ray.init``, without vLLM, which the driver
never needs (``batch.builder_imports``).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

from batch.builder_imports import start_builder_imports
from batch.engine import EngineResult, finish_reason, is_abort_error
from batch.prompts import PromptRenderer
from batch.requests import PromptRequest
from gateway.priority import PriorityClass, engine_priority

ERROR_COLUMN = "__inference_error__"
OBJECT_STORE_BYTES = 1 << 30  # rows are prompts and small images; keep shared memory free
#: Ray resources of the Serve processor's stages: they only wait on the engine deployments,
#: and Ray Data's default (one CPU per task and actor) never schedules on a cluster whose
#: CPUs the Serve application holds, as a serving cluster's are.
NO_CPU = {"num_cpus": 0}
NOT_FOR_BATCH = frozenset(
    {
        "chat_template",
        "chat_template_content_format",
        "default_chat_template_kwargs",
        "enable_auto_tool_choice",
        "tool_call_parser",
        "lora_modules",
        "enable_lora",
        "max_lora_rank",
        "max_loras",
    }
)


@dataclass(frozen=True)
class VariantEngineSpec:
    """What a batch needs to start one variant's engine (from its ``LLMConfig`` data)."""

    variant: str
    model_source: str
    engine_kwargs: dict[str, Any]
    env_vars: dict[str, str] = field(default_factory=dict)
    cpu: bool = False

    @classmethod
    def from_llm_config(cls, data: dict[str, Any]) -> VariantEngineSpec:
        loading = data["model_loading_config"]
        runtime_env = data.get("runtime_env") or {}
        return cls(
            variant=loading["model_id"],
            model_source=loading["model_source"],
            engine_kwargs=dict(data["engine_kwargs"]),
            env_vars=dict(runtime_env.get("env_vars") or {}),
            cpu=(data.get("accelerator_config") or {}).get("kind") == "cpu",
        )

    def processor_engine_kwargs(self) -> dict[str, Any]:
        """vLLM engine arguments, minus the OpenAI server's and LoRA's.

        Chat templates are applied before the engine (``PromptRenderer``); batch lines
        address variants, not adapters, so the engine runs without LoRA slots. Config
        sections given as mappings (``structured_outputs_config: {...}``) become vLLM's
        config objects, as vLLM's command line and Ray Serve LLM make them: Ray Data
        LLM hands the arguments to ``AsyncEngineArgs`` as they are.
        """
        kwargs = {k: v for k, v in self.engine_kwargs.items() if k not in NOT_FOR_BATCH}
        return vllm_config_sections(kwargs)

    def engine_env(self) -> dict[str, str]:
        """The engine actor's environment: the variant's, and on a single-worker CPU engine
        the model worker inside vLLM's engine core.

        Ray Data LLM asks for vLLM's in-process executor (``uni``) for a one-bundle engine,
        but vLLM's CPU platform turns it into the multiprocessing one unless
        ``VLLM_ENABLE_V1_MULTIPROCESSING`` is off; and in a Ray actor vLLM can only
        ``spawn`` its processes, so that worker re-imports torch and vLLM before it loads
        a weight (15-20 s of a 2-core host's engine start, and a process's memory). With
        it off the engine core (which ``AsyncLLM`` starts in any case) keeps the worker,
        as the Serve engines do (``serving.engine``). The variable only chooses the
        executor here: ``AsyncLLM`` always runs its engine core in a process of its own.
        """
        workers = int(self.engine_kwargs.get("tensor_parallel_size", 1)) * int(
            self.engine_kwargs.get("pipeline_parallel_size", 1)
        )
        if not self.cpu or workers != 1:
            return dict(self.env_vars)
        return {**self.env_vars, "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}

    def renderer_kwargs(self) -> dict[str, Any]:
        return {
            "model_source": self.model_source,
            "chat_template": self.engine_kwargs.get("chat_template"),
            "chat_template_kwargs": self.engine_kwargs.get("default_chat_template_kwargs"),
        }


def vllm_config_sections(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Engine arguments with mapping values of config fields validated into vLLM's configs.

    Arguments without a mapping value are handed back as they are, without importing the
    helper: its module imports Ray Serve LLM's engine and vLLM (15-20 s on a 2-core host),
    which the job's driver otherwise never needs, and the engine actor waits for the driver.
    """
    if not any(isinstance(value, Mapping) for value in kwargs.values()):
        return kwargs
    from ray.llm._internal.serve.engines.vllm.vllm_engine import (
        _normalize_vllm_engine_kwargs,  # Ray Serve LLM's own step (ray pinned)
    )

    return _normalize_vllm_engine_kwargs(kwargs)


class _NoTelemetry:
    """Ray Data LLM's telemetry agent when Ray's usage stats are off: it reports nothing."""

    def push_telemetry_report(self, telemetry: Any) -> None:
        del telemetry


@contextmanager
def usage_telemetry_as_configured() -> Iterator[None]:
    """Build Ray Data LLM's vLLM processor without its usage-telemetry actor when Ray's
    usage stats are off (``RAY_USAGE_STATS_ENABLED=0``: on every cluster ``ray.init``
    starts, as a batch job's own, and on the stack's).

    The builder starts a named actor on the head node and waits for it to take one
    report, whatever the setting: a Ray worker process of its own (about 0.45 GB), started
    while the driver waits and before the engine actor is asked for. The engine replicas
    skip the same actor for the same reason (``serving.server``). With usage stats on,
    nothing changes.
    """
    from ray._common.usage.usage_lib import usage_stats_enabled
    from ray.llm._internal.batch.processor import vllm_engine_proc  # ray is pinned

    if usage_stats_enabled():
        yield
        return
    builder_agent = vllm_engine_proc.get_or_create_telemetry_agent
    vllm_engine_proc.get_or_create_telemetry_agent = cast(Any, _NoTelemetry)
    try:
        yield
    finally:
        vllm_engine_proc.get_or_create_telemetry_agent = builder_agent


def request_row(request: PromptRequest) -> dict[str, Any]:
    """A Ray Data row for one request (messages as JSON text: one Arrow type for all)."""
    return {
        "custom_id": request.custom_id,
        "messages": json.dumps(request.messages) if request.messages is not None else "",
        "prompt": request.prompt or "",
        "images": list(request.images),
        "sampling_params": dict(request.sampling_params),
    }


def result_from_row(row: dict[str, Any], max_tokens: int | None) -> EngineResult:
    """An engine result from one output row of the vLLM stage."""
    error = row.get(ERROR_COLUMN) or None
    completion = int(row.get("num_generated_tokens") or 0)
    return EngineResult(
        custom_id=str(row["custom_id"]),
        text=str(row.get("generated_text") or ""),
        prompt_tokens=int(row.get("num_input_tokens") or 0),
        completion_tokens=completion,
        finish_reason=finish_reason(completion, max_tokens),
        error=str(error) if error else None,
    )


def _blocks(dataset: Any, limits: dict[str, int | None]) -> Iterator[list[EngineResult]]:
    for batch in dataset.iter_batches(batch_size=None, batch_format="pandas"):
        rows = batch.to_dict("records")
        yield [result_from_row(r, limits.get(str(r["custom_id"]))) for r in rows]


class VllmProcessorEngine:
    """Ray Data LLM's vLLM engine processor, one variant at a time."""

    def __init__(
        self, specs: Sequence[VariantEngineSpec], *, batch_size: int = 16, num_cpus: int = 4
    ) -> None:
        self.specs = {s.variant: s for s in specs}
        self.batch_size = batch_size
        self.num_cpus = num_cpus

    def _init_ray(self, spec: VariantEngineSpec) -> None:
        import ray
        from ray.data import DataContext

        DataContext.get_current().enable_progress_bars = False  # the job has its own
        if not ray.is_initialized():
            ray.init(
                address="local",
                num_cpus=self.num_cpus,
                object_store_memory=OBJECT_STORE_BYTES,
                include_dashboard=False,
                runtime_env={"env_vars": spec.engine_env()},
                log_to_driver=False,
                logging_level=logging.WARNING,
            )

    def _processor(self, spec: VariantEngineSpec) -> Any:
        from ray.data.llm import build_processor, vLLMEngineProcessorConfig

        config = vLLMEngineProcessorConfig(
            model_source=spec.model_source,
            engine_kwargs=spec.processor_engine_kwargs(),
            runtime_env={"env_vars": spec.engine_env()},
            batch_size=self.batch_size,
            concurrency=1,
            chat_template_stage=False,
            tokenize_stage=False,
            detokenize_stage=False,
            should_continue_on_error=True,
            log_engine_metrics=False,
            placement_group_config={"bundles": [{"CPU": 1}]} if spec.cpu else None,
        )
        with usage_telemetry_as_configured():
            return build_processor(config)

    def run(self, variant: str, requests: Sequence[PromptRequest]) -> Iterator[list[EngineResult]]:
        import ray
        import ray.data  # here, before the builder's imports start beside the driver

        spec = self.specs[variant]
        builder_imports = start_builder_imports()
        self._init_ray(spec)
        dataset: Any = ray.data.from_items([request_row(r) for r in requests])
        dataset = dataset.map(
            PromptRenderer,
            fn_constructor_kwargs=spec.renderer_kwargs(),
            concurrency=1,
            num_cpus=0.5,
        )
        builder_imports.result()
        processed = self._processor(spec)(dataset)
        yield from _blocks(processed, {r.custom_id: r.max_tokens for r in requests})

    def abort(self) -> None:
        """Nothing to reach: the command line's job ends with its process (and its engine)."""

    def close(self) -> None:
        import ray

        if ray.is_initialized():
            ray.shutdown()


def serve_request(request: PromptRequest) -> dict[str, Any]:
    """A Ray Data row for the Serve deployment stage: the OpenAI request of one line."""
    params = request.sampling_params
    kwargs: dict[str, Any] = {
        "model": request.variant,
        "stream": False,
        "max_tokens": params["max_tokens"],
        "temperature": params["temperature"],
        "top_p": params["top_p"],
        "presence_penalty": params["presence_penalty"],
        "frequency_penalty": params["frequency_penalty"],
        "seed": params["seed"],
        "priority": engine_priority(PriorityClass.BATCH),
    }
    if params["stop"]:
        kwargs["stop"] = params["stop"]
    if request.endpoint == "chat":
        method, dtype = "chat", "ChatCompletionRequest"
        kwargs["messages"] = request.messages
    else:
        method, dtype = "completions", "CompletionRequest"
        kwargs["prompt"] = request.prompt
    return {
        "custom_id": request.custom_id,
        "method": method,
        "dtype": dtype,
        "request_kwargs_json": json.dumps(kwargs),
    }


def _expand_kwargs(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "request_kwargs": json.loads(row.pop("request_kwargs_json"))}


def result_from_response(row: dict[str, Any], max_tokens: int | None) -> EngineResult:
    """An engine result from an OpenAI response the Serve deployment returned."""
    custom_id = str(row["custom_id"])
    error = row.get(ERROR_COLUMN) or (row.get("error") if row.get("object") == "error" else None)
    if is_abort_error(error):
        return EngineResult(custom_id, error=str(error), aborted=True)
    choices = list(row.get("choices") or [])
    if error or not choices:
        return EngineResult(custom_id, error=str(error or "no choices in the response"))
    choice = choices[0]
    message = choice.get("message") or {}
    usage = row.get("usage") or {}
    completion = int(usage.get("completion_tokens") or 0)
    return EngineResult(
        custom_id=custom_id,
        text=str(message.get("content") or choice.get("text") or ""),
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=completion,
        finish_reason=str(choice.get("finish_reason") or finish_reason(completion, max_tokens)),
    )


class ServeProcessorEngine:
    """The engine deployments of a running Serve application (``serving.app``)."""

    def __init__(self, app_name: str, *, address: str = "auto", batch_size: int = 16) -> None:
        self.app_name = app_name
        self.address = address
        self.batch_size = batch_size
        self._started_ray = False
        self._aborted = threading.Event()
        self._signal: Any = None

    def _deployment(self, variant: str) -> str:
        from ray import serve

        deployments = serve.status().applications[self.app_name].deployments
        name = next((d for d in deployments if d.endswith(f":{variant}")), None)
        if name is None:
            raise KeyError(f"no engine deployment for {variant!r} in {self.app_name!r}")
        return name

    def run(self, variant: str, requests: Sequence[PromptRequest]) -> Iterator[list[EngineResult]]:
        import ray
        from ray.data.llm import ServeDeploymentProcessorConfig, build_processor
        from ray.serve.llm.openai_api_models import ChatCompletionRequest, CompletionRequest

        from batch.serve_stage import make_abortable

        if not ray.is_initialized():
            ray.init(address=self.address, log_to_driver=False)
            self._started_ray = True
        config = ServeDeploymentProcessorConfig(
            deployment_name=self._deployment(variant),
            app_name=self.app_name,
            dtype_mapping={
                "ChatCompletionRequest": ChatCompletionRequest,
                "CompletionRequest": CompletionRequest,
            },
            batch_size=self.batch_size,
            concurrency=1,
            should_continue_on_error=True,
        )
        processor = build_processor(
            config,
            preprocess=_expand_kwargs,
            preprocess_map_kwargs=dict(NO_CPU),
            postprocess_map_kwargs=dict(NO_CPU),
        )
        for name in processor.list_stage_names():
            processor.get_stage_by_name(name).map_batches_kwargs.update(NO_CPU)
        signal = self._new_signal()
        make_abortable(processor, signal)
        dataset: Any = processor(ray.data.from_items([serve_request(r) for r in requests]))
        limits = {r.custom_id: r.max_tokens for r in requests}
        try:
            for batch in dataset.iter_batches(batch_size=None, batch_format="pandas"):
                rows = batch.to_dict("records")
                yield [result_from_response(r, limits.get(str(r["custom_id"]))) for r in rows]
        finally:
            self._signal = None
            ray.kill(signal)

    def _new_signal(self) -> Any:
        from batch.serve_stage import new_signal

        signal = new_signal()
        self._signal = signal
        if self._aborted.is_set():  # aborted before this variant started
            signal.set.remote()
        return signal

    def abort(self) -> None:
        """Cancel this run's requests in flight on the engines, and any it would send."""
        self._aborted.set()
        signal = self._signal
        if signal is not None:
            signal.set.remote()

    def close(self) -> None:
        """Shut Ray down if this engine connected to it (a caller's connection stays)."""
        import ray

        if self._started_ray and ray.is_initialized():
            ray.shutdown()
