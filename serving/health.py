"""Whether each engine deployment answers now: its replica's health check, bounded in time.

``LLMServer.check_health`` raises once vLLM's engine core has died (``EngineDeadError``),
and a deployment whose replicas are all dead or restarting has no replica to take the
call, so Serve's router holds it: both read as *down* here, the second once
``timeout_s`` has passed. An engine deployment takes any number of requests at once
(Ray Serve LLM's ``max_ongoing_requests`` is unbounded by default), so a busy engine
still answers its health check at once.

Each result is ``{"status": "up"}`` or ``{"status": "down", "reason": ...}``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ray.serve.handle import DeploymentHandle

UP = {"status": "up"}
#: How long a listing waits for an engine's health check before calling it down.
HEALTH_TIMEOUT_S = 2.0


async def check(handle: DeploymentHandle, timeout_s: float) -> dict[str, str]:
    """One engine's health, through its deployment; never raises."""
    response = handle.check_health.remote()
    return await answered(response, timeout_s, on_timeout=response.cancel)


async def answered(
    health_check: Awaitable[object],
    timeout_s: float,
    on_timeout: Callable[[], object] | None = None,
) -> dict[str, str]:
    """The health a check reports (an engine replica's ``check_health``); never raises."""
    try:
        await asyncio.wait_for(health_check, timeout_s)
    except TimeoutError:
        if on_timeout is not None:
            on_timeout()
        return {"status": "down", "reason": f"no replica answered within {timeout_s:g}s"}
    except Exception as exc:  # the replica said its engine is dead, or the call failed
        return {"status": "down", "reason": type(exc).__name__}
    return dict(UP)


async def engine_health(
    engines: Mapping[str, DeploymentHandle], *, timeout_s: float
) -> dict[str, dict[str, str]]:
    """Every engine's health, checked concurrently."""
    ids = list(engines)
    results = await asyncio.gather(*(check(engines[i], timeout_s) for i in ids))
    return dict(zip(ids, results, strict=True))
