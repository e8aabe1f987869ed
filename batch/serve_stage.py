"""Ray Data LLM's Serve deployment stage, made abortable from the job that runs it.

Ray Data LLM's ``ServeDeploymentStageUDF`` awaits each row's ``DeploymentHandle`` call
until the engine answers; nothing outside the Ray Data actor can reach those calls, so a
cancelled batch's block in flight would run on in the engine. Here each run has an
``AbortSignal`` actor; the stage's UDF (``AbortableServeStageUDF``, put in place of Ray
Data LLM's by ``make_abortable``) races every call against it, and once it is set
cancels the call with ``DeploymentResponseGenerator.cancel()`` - Ray Serve cancels the
request on its replica, where vLLM aborts it - and answers the row at once with a
``RequestAborted`` error (``batch.engine.is_abort_error``). A row not yet sent when the
signal is set is never sent.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ray.llm._internal.batch.stages.serve_deployment_stage import ServeDeploymentStageUDF

from batch.engine import RequestAborted


class AbortSignal:
    """A one-way flag a run's stage actors wait on (an asyncio Ray actor, no CPU)."""

    def __init__(self) -> None:
        self._set = asyncio.Event()

    async def set(self) -> None:
        self._set.set()

    async def wait(self) -> bool:
        await self._set.wait()
        return True


def new_signal() -> Any:
    """An ``AbortSignal`` actor for one run (owned by the caller's Ray connection)."""
    import ray

    return ray.remote(num_cpus=0)(AbortSignal).remote()


class AbortableServeStageUDF(ServeDeploymentStageUDF):
    """``ServeDeploymentStageUDF`` whose calls end as ``RequestAborted`` once the signal is set."""

    def __init__(self, *args: Any, abort_signal: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._signal = abort_signal
        self._aborted: asyncio.Future[Any] | None = None

    def _abort_future(self) -> asyncio.Future[Any]:
        if self._aborted is None:  # one wait per actor: the signal never clears
            self._aborted = asyncio.ensure_future(self._signal.wait.remote())
        return self._aborted

    async def generate_async(self, row: dict[str, Any]) -> tuple[dict[str, Any], Any, float]:
        aborted = self._abort_future()
        if aborted.done():
            raise RequestAborted("the batch run was aborted before this request was sent")
        request, dtype, method = self._prepare_request(row)
        started = time.perf_counter()
        response = getattr(self._dh, method).remote(dtype(**request) if dtype else request)
        first = asyncio.ensure_future(response.__anext__())
        await asyncio.wait({first, aborted}, return_when=asyncio.FIRST_COMPLETED)
        if not first.done():
            response.cancel()
            first.cancel()
            first.add_done_callback(_consume)
            raise RequestAborted("the batch run was aborted while this request ran")
        output = first.result()
        if hasattr(output, "model_dump"):
            output = output.model_dump()
        return request, output, time.perf_counter() - started

    def _is_recoverable_error(self, exc: Exception) -> bool:
        return isinstance(exc, RequestAborted) or super()._is_recoverable_error(exc)


def _consume(future: asyncio.Future[Any]) -> None:
    """Retrieve a cancelled call's outcome (Serve raises ``RequestCancelledError`` there)."""
    if not future.cancelled():
        future.exception()


def make_abortable(processor: Any, signal: Any) -> None:
    """Put ``AbortableServeStageUDF`` in the Serve deployment stage of ``processor``."""
    for name in processor.list_stage_names():
        stage = processor.get_stage_by_name(name)
        if issubclass(stage.fn, ServeDeploymentStageUDF):
            stage.fn = AbortableServeStageUDF
            stage.fn_constructor_kwargs = {**stage.fn_constructor_kwargs, "abort_signal": signal}
            return
    raise LookupError("the processor has no Serve deployment stage")
