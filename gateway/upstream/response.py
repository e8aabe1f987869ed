"""The client-facing SSE response: relays events and always finishes its upstream request.

While events flow the response watches for the client's ``http.disconnect``; when
it comes (or a send fails) the relay is cancelled and the upstream stream closed,
which makes the serving application abort the generation. ``on_close`` runs exactly
once, shielded, whatever ended the stream (before the last byte when it ends normally).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, nullcontext

import anyio
from anyio import CancelScope
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from gateway.upstream.sse import StreamTally


class RelayResponse(StreamingResponse):
    """A ``text/event-stream`` response over an upstream relay."""

    def __init__(
        self,
        events: AsyncGenerator[bytes, None],
        tally: StreamTally,
        *,
        on_close: Callable[[StreamTally, bool], Awaitable[None]],
        headers: Mapping[str, str] | None = None,
        renewing: Callable[[], AbstractAsyncContextManager[None]] | None = None,
    ) -> None:
        super().__init__(
            events,
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no", **(headers or {})},
        )
        self._events = events
        self.tally = tally
        self._on_close = on_close
        self.client_gone = False
        self._renewing = renewing or nullcontext
        self._closed = False

    async def _watch(self, receive: Receive, scope: CancelScope) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.client_gone = True
                scope.cancel()
                return

    async def _stream(self, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        async for chunk in self._events:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await self._close()  # settled before the client sees the end of the stream
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            await self._events.aclose()
            await self._on_close(self.tally, self.client_gone or not self.tally.done)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._watch, receive, group.cancel_scope)
                async with self._renewing():
                    try:
                        await self._stream(send)
                    except OSError:
                        self.client_gone = True
                group.cancel_scope.cancel()
        finally:
            await self._close()
