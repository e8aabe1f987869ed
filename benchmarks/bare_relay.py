"""The floor under the gateway: a FastAPI app that only relays a chat request upstream.

``POST /v1/chat/completions`` goes to ``BARE_RELAY_UPSTREAM`` through one pooled aiohttp
session and its answer streams back read by read. It runs on the gateway's server
(uvicorn), framework (FastAPI) and client (aiohttp) and does none of the gateway's work:
no key, quota, routing, tracing, metrics, accounting or body checks. ``gateway_overhead.py
--floor`` measures it beside the gateway, so the run shows what the libraries alone cost
per request on the machine at hand, and what the gateway's own work adds to that.

    BARE_RELAY_UPSTREAM=http://127.0.0.1:9100 uvicorn --factory benchmarks.bare_relay:create_app
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

UPSTREAM_ENV = "BARE_RELAY_UPSTREAM"


def create_app(upstream: str | None = None) -> FastAPI:
    """The relay to ``upstream`` (a base URL; default: ``BARE_RELAY_UPSTREAM``)."""
    upstream = upstream or os.environ[UPSTREAM_ENV]
    sessions: list[aiohttp.ClientSession] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with aiohttp.ClientSession(upstream) as session:
            sessions.append(session)
            yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> StreamingResponse:
        headers = {"content-type": "application/json"}
        body = await request.body()
        response = await sessions[0].post("/v1/chat/completions", data=body, headers=headers)

        async def relay() -> AsyncIterator[bytes]:
            async with response:
                async for block in response.content.iter_any():
                    yield block

        return StreamingResponse(relay(), media_type="text/event-stream")

    return app
