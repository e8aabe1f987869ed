"""uvicorn's httptools protocol with the deadlines and limits uvicorn leaves out.

uvicorn closes a connection idle after an answer, but waits for ever for a first
request, for headers sent a byte at a time, for headers of any size and for the rest of a
body nobody reads. ``GatewayHttpProtocol`` adds, per connection (``ServerSettings``):

- an idle deadline from the connection's start (``keep_alive_timeout``: uvicorn's
  keep-alive timer, armed at once and again after a dropped body, not only after an answer);
- a header deadline from a request's first byte to the end of its headers
  (``header_timeout``: 408, then the connection is closed);
- a cap on the request line and headers (``max_header_bytes``: 431 and closed);
- a deadline for the rest of a body answered before it was read (``unread_body_timeout``:
  uvicorn drops those bytes as they come; past the deadline the connection is closed).

It also takes uvicorn's ``--timeout-keep-alive`` and ``--limit-concurrency`` from
``ServerSettings``. uvicorn builds the protocol from an import string in every worker, so
the class reads ``GATEWAY_SERVER__*`` once per process; ``with_settings`` binds other
settings (tests, an in-process server). Deadlines of bodies the app reads are the app's
(``gateway.body_limit``).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, ClassVar

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from gateway.errors import GatewayError, HeadersTooLarge, RequestTimeout
from gateway.http_errors import raw_error_response
from gateway.server.settings import ServerSettings

#: The protocol for uvicorn's ``--http`` option (``http=`` of ``uvicorn.run``).
IMPORT_STRING = "gateway.server.protocol:GatewayHttpProtocol"


@functools.cache
def _from_environment() -> ServerSettings:
    from gateway.settings import GatewaySettings

    return GatewaySettings().server


class GatewayHttpProtocol(HttpToolsProtocol):
    """One HTTP/1.1 connection, with idle, header and unread-body deadlines."""

    bound_settings: ClassVar[ServerSettings | None] = None

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = self.bound_settings or _from_environment()
        self.timeout_keep_alive = self.limits.keep_alive_timeout  # type: ignore[assignment]
        self.limit_concurrency = self.limits.max_connections
        self._header_deadline: asyncio.TimerHandle | None = None
        self._drop_deadline: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._awaiting_headers = True
        self._refusal: GatewayError | None = None

    @classmethod
    def with_settings(cls, settings: ServerSettings) -> type[GatewayHttpProtocol]:
        """This protocol bound to ``settings`` instead of the environment's."""
        return type(cls.__name__, (cls,), {"bound_settings": settings})

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._start_idle_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_deadline()
        self._stop_drop_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._awaiting_headers:
            self._start_header_deadline()
        super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        if self._refusal is None:
            super().send_400_response(msg)
        else:
            self._refuse(self._refusal)

    # Parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._awaiting_headers = True
        self._header_bytes = 0
        self._start_header_deadline()

    def on_url(self, url: bytes) -> None:
        self._count_header_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._stop_header_deadline()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._awaiting_headers = True
        if self._drop_deadline is not None:  # a dropped body ended: idle from now on
            self._stop_drop_deadline()
            self._start_idle_deadline()

    def on_response_complete(self) -> None:
        cycle = self.cycle
        unread = cycle is not None and cycle.response_complete and cycle.more_body
        if unread and not self.transport.is_closing():
            self._drop_deadline = self.loop.call_later(
                self.limits.unread_body_timeout, self.transport.close
            )
        super().on_response_complete()

    # Deadlines and refusals

    def _start_idle_deadline(self) -> None:
        self._unset_keepalive_if_required()
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def _start_header_deadline(self) -> None:
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(
                self.limits.header_timeout, self._headers_timed_out
            )

    def _stop_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _stop_drop_deadline(self) -> None:
        if self._drop_deadline is not None:
            self._drop_deadline.cancel()
            self._drop_deadline = None

    def _headers_timed_out(self) -> None:
        self._header_deadline = None
        seconds = self.limits.header_timeout
        self._refuse(RequestTimeout(f"The request headers did not arrive within {seconds} s."))

    def _count_header_bytes(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.limits.max_header_bytes:
            limit = self.limits.max_header_bytes
            self._refusal = HeadersTooLarge(
                f"The request line and headers are longer than {limit} bytes."
            )
            raise self._refusal  # stops the parser; uvicorn then calls send_400_response

    def _refuse(self, exc: GatewayError) -> None:
        if not self.transport.is_closing():
            self.transport.write(raw_error_response(exc))
            self.transport.close()
