"""Ray Serve LLM's vLLM engine, with the model worker inside vLLM's engine core on a CPU host.

vLLM runs an engine as the ``AsyncLLM`` frontend (here: the Serve replica), an engine core
process (scheduler), and, with the multiprocessing executor Ray Serve LLM asks for on a CPU,
one more process for the model worker. Each of those processes imports torch and vLLM and
holds its own allocator arenas, about 0.65 GB on this stack's CPU engines. With one worker
(no tensor parallelism) there is nothing for a separate process to parallelise, so the
engine core runs it in-process: vLLM's ``UniProcExecutor``, the executor vLLM itself uses for
a single device. GPU engines and tensor-parallel CPU engines keep Ray Serve LLM's executor.

Ray Serve LLM 2.60 reads vLLM's tokenization handler as ``openai_serving_tokenization`` of
the app state vLLM builds, which vLLM 0.29 names ``serving_tokenization``: without the
handler, ``/tokenize`` and ``/detokenize`` answer 400 ("does not support the 'tokenization'
task") for every model. The engine takes it under vLLM's name when Ray's finds none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ray.llm._internal.serve.engines.vllm.vllm_engine import VLLMEngine

if TYPE_CHECKING:
    from vllm.config import VllmConfig

IN_PROCESS_EXECUTOR = "uni"


def runs_worker_in_process(config: VllmConfig) -> bool:
    """Whether the engine's single CPU worker can live in the engine core process."""
    return config.device_config.device_type == "cpu" and config.parallel_config.world_size == 1


class GemmaVLLMEngine(VLLMEngine):
    """``VLLMEngine`` whose single-worker CPU engines keep the worker in the engine core,
    with vLLM's tokenization handler found under its 0.29 name."""

    async def start(self) -> None:
        await super().start()
        if self._oai_serving_tokenization is None:
            state = getattr(self, "_app_state", None)
            self._oai_serving_tokenization = getattr(state, "serving_tokenization", None)

    def _start_async_llm_engine(
        self, vllm_engine_args: Any, vllm_engine_config: VllmConfig, placement_group: Any
    ) -> Any:
        if runs_worker_in_process(vllm_engine_config):
            vllm_engine_config.parallel_config.distributed_executor_backend = IN_PROCESS_EXECUTOR
        return super()._start_async_llm_engine(
            vllm_engine_args, vllm_engine_config, placement_group
        )
