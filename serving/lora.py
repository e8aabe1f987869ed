"""LoRA adapters from local directories, served as the model ids ``<variant>:<adapter>``.

Ray Serve LLM routes a request for ``base:adapter`` to the base model's deployment as a
multiplexed model, and its ``LLMServer`` asks a loader for the adapter's directory. Ray's
own loader only downloads adapters from cloud storage (``lora_config.
dynamic_lora_loading_path`` must be s3://, gs:// or azure://). Adapters produced by a
local fine-tuning run are directories, so the catalog hands them to vLLM as static LoRA
modules (``engine_kwargs.lora_modules``, loaded and checked when the engine starts) and
``StaticLoraServer`` plugs in ``StaticLoraLoader``, which maps the requested id to the
module of the same name. It is the ``server_cls`` of variants that list adapters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import HTTPException
from ray.llm._internal.common.models import global_id_manager
from ray.llm._internal.serve.core.configs.llm_config import DiskMultiplexConfig
from ray.llm._internal.serve.utils.lora_serve_utils import LoraModelLoader

from serving.server import GemmaLLMServer

if TYPE_CHECKING:
    from ray.serve.llm import LLMConfig


def static_lora_modules(llm_config: LLMConfig) -> dict[str, str]:
    """Adapter model id -> directory, from the engine's ``lora_modules``."""
    modules = llm_config.engine_kwargs.get("lora_modules") or []
    return {m["name"]: m["path"] for m in modules}


class StaticLoraLoader(LoraModelLoader):
    """Ray's ``LoraModelLoader`` resolving ``<variant>:<adapter>`` to a static LoRA module.

    Nothing is downloaded: the module's directory is already on the replica's node and
    vLLM loaded it when the engine started.
    """

    async def load_model_from_config(
        self, lora_model_id: str, llm_config: LLMConfig
    ) -> DiskMultiplexConfig:
        modules = static_lora_modules(llm_config)
        path = modules.get(lora_model_id)
        if path is None:
            served = ", ".join(sorted(modules)) or "none"
            raise HTTPException(
                404, f'Unknown LoRA adapter "{lora_model_id}" (served adapters: {served}).'
            )
        return DiskMultiplexConfig(
            model_id=lora_model_id,
            max_total_tokens=llm_config.max_request_context_length,
            local_path=path,
            lora_assigned_int_id=global_id_manager.next(),
        )


class StaticLoraServer(GemmaLLMServer):
    """The engine deployment with adapters resolved by ``StaticLoraLoader``."""

    async def __init__(  # type: ignore[misc]
        self,
        llm_config: LLMConfig,
        *,
        engine_cls: Any = None,
        model_downloader: type[LoraModelLoader] | None = None,
    ) -> None:
        await super().__init__(
            llm_config,
            engine_cls=engine_cls,
            model_downloader=model_downloader or StaticLoraLoader,
        )
