"""The deadlines of a request body as the app receives it: in all, and between chunks.

``BodyDeadlines.receive(receive)`` is the ASGI ``receive`` of one request: while the body
is arriving, a chunk later than the body's deadline (``total`` seconds from the first
call) or than ``stall`` seconds after the previous one raises ``RequestTimeout`` (408,
the connection closed). Once the body has ended it waits as long as it is asked to (the
app listens for the client's disconnect that way).
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio
from starlette.types import Message, Receive

from gateway.errors import RequestTimeout


@dataclass(frozen=True)
class BodyDeadlines:
    total: float
    stall: float

    def receive(self, receive: Receive) -> Receive:
        deadline = anyio.current_time() + self.total
        ended = False

        async def within_deadlines() -> Message:
            nonlocal ended
            if ended:
                return await receive()
            left = deadline - anyio.current_time()
            with anyio.move_on_after(min(self.stall, left)):
                message = await receive()
                ended = message["type"] != "http.request" or not message.get("more_body", False)
                return message
            raise self._late(stalled=self.stall < left)

        return within_deadlines

    def _late(self, *, stalled: bool) -> RequestTimeout:
        if stalled:
            return RequestTimeout(f"The request body paused for more than {self.stall} s.")
        return RequestTimeout(f"The request body did not arrive within {self.total} s.")
