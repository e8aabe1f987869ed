"""Giving up the upstream call of a request whose client has gone.

Starlette does not cancel a handler when its client disconnects: a non-streamed
request would keep the engine generating for nobody. ``abandoned_on_disconnect`` runs a
block beside a watcher of the ASGI ``receive`` channel (the body is read by then, so
the next message is ``http.disconnect``); when the client leaves, the block is cancelled
(its upstream connection closed, which makes the serving application abort the
generation) and ``ClientDisconnected`` is raised. Streams watch for themselves once
their first byte is relayed (``gateway.upstream.response``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from starlette.types import Receive

from gateway.errors import ClientDisconnected


async def _watch(receive: Receive, scope: anyio.CancelScope) -> None:
    try:
        while (await receive())["type"] != "http.disconnect":
            pass
    except Exception:  # the channel broke: nothing more to learn from it
        return
    scope.cancel()


@asynccontextmanager
async def abandoned_on_disconnect(receive: Receive) -> AsyncIterator[None]:
    """Run the block; cancel it and raise ``ClientDisconnected`` if the client leaves.

    The watcher is a bare task rather than a task group, so the block's own errors
    reach the caller as themselves.
    """
    with anyio.CancelScope() as scope:
        watcher = asyncio.create_task(_watch(receive, scope))
        try:
            yield
        finally:
            watcher.cancel()
    if scope.cancelled_caught:  # the block was cut short (only the watcher cancels it)
        raise ClientDisconnected("The client closed the connection.")
