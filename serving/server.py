"""The engine deployment of every variant: Ray Serve LLM's ``LLMServer`` with a load probe.

``num_unfinished_requests`` reports how many requests the vLLM engine is still working on,
through the deployment handle (``handle.num_unfinished_requests.remote()``). Operators use it
to watch a replica drain; the integration tests use it to show that a request abandoned by
its client stops generating. Chat and completion calls run inside a GenAI span whose
context vLLM's engine span continues (``serving.genai_span``), and the replica's log lines
carry the trace id (``serving.logs``). Its engine is ``serving.engine.GemmaVLLMEngine``.
Streamed chunks go to the proxy in Ray Serve LLM's batches, except that the first of a
pause goes at once (``serving.stream_batching``).

In a direct-streaming application (``serving.app``) the replica serves vLLM's own OpenAI
app over HTTP instead: requests reach vLLM's handlers without ``chat``/``completions``
(vLLM continues the trace of the request's ``traceparent`` itself), tokens stream without
batches, and ``GET /v1/models`` answers with the catalog's cards.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.routing import APIRoute
from ray._common.usage.usage_lib import usage_stats_enabled
from ray.llm._internal.serve.core.configs.openai_api_models import ModelList, to_model_metadata
from ray.llm._internal.serve.core.protocol import RawRequestInfo
from ray.serve.llm.deployment import LLMServer

from serving.engine import GemmaVLLMEngine
from serving.genai_span import traced_call
from serving.health import HEALTH_TIMEOUT_S, answered
from serving.logs import install_trace_ids
from serving.model_cards import MODEL_METADATA_KEY, adapter_cards, catalog_card, with_health
from serving.stream_batching import leading_edge_batches

T = TypeVar("T")


class GemmaLLMServer(LLMServer):
    """``LLMServer`` with GenAI spans and a read of the engine's in-flight request count."""

    _default_engine_cls = GemmaVLLMEngine  # type: ignore[assignment]
    health_timeout_s = HEALTH_TIMEOUT_S  # of the engine's health check in ``models``

    # Ray Serve awaits async constructors; ``LLMServer``'s starts the engine.
    async def __init__(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[misc]
        install_trace_ids()  # this replica's log lines carry their request's trace id
        await super().__init__(*args, **kwargs)

    async def _start_engine(self) -> None:
        if usage_stats_enabled():
            await super()._start_engine()
            return
        # Ray Serve LLM reports every model to a detached usage-telemetry actor (a process of
        # about 0.45 GB on the head node) even when Ray's usage stats are off; they are, here.
        if self.engine is None:
            raise ValueError("Engine is not set")
        await self.engine.start()

    async def chat(
        self, request: Any, raw_request_info: RawRequestInfo | None = None
    ) -> AsyncGenerator[Any, None]:
        return await traced_call("chat", request, raw_request_info, super().chat)

    async def completions(
        self, request: Any, raw_request_info: RawRequestInfo | None = None
    ) -> AsyncGenerator[Any, None]:
        return await traced_call("text_completion", request, raw_request_info, super().completions)

    def _batch_output_stream(
        self, generator: AsyncGenerator[T, None]
    ) -> AsyncGenerator[list[T], None]:
        interval_ms = self._get_batch_interval_ms()
        if not interval_ms:  # 0: every chunk alone; None: all at once (Ray's own)
            return super()._batch_output_stream(generator)
        return leading_edge_batches(generator, interval_ms / 1000)

    async def __serve_build_asgi_app__(self) -> FastAPI:
        """vLLM's own OpenAI app, which this replica serves in a direct-streaming application
        (``serving.app``), with the catalog's cards in ``GET /v1/models`` (ahead of vLLM's
        own listing, which names the model and its LoRA modules and nothing else)."""
        app: FastAPI = await super().__serve_build_asgi_app__()
        app.router.routes.insert(0, APIRoute("/v1/models", self.models, methods=["GET"]))
        return app

    async def models(self) -> dict[str, Any]:
        """The model and its adapters as the OpenAI ingress lists them, with the engine's
        health (``serving.model_cards``)."""
        config = self._llm_config
        card = catalog_card(
            to_model_metadata(config.model_id, config),
            config.experimental_configs.get(MODEL_METADATA_KEY, {}),
        )
        health = await answered(self.check_health(), self.health_timeout_s)
        cards = [with_health(c, health) for c in (card, *adapter_cards(card))]
        return ModelList(data=cards).model_dump()

    async def num_unfinished_requests(self) -> int:
        # Ray's vLLM engine keeps vLLM's AsyncLLM as ``_engine_client`` once started.
        client = getattr(self.engine, "_engine_client", None)
        if client is None:
            return 0
        return int(client.get_num_unfinished_requests())
