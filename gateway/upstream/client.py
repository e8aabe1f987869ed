"""HTTP calls to the serving application through one pooled ``aiohttp`` session.

``Upstream.send`` sorts failures: a refused connection, a connect timeout or a 503
means *this model cannot take the request now* (``Unavailable``; routing tries the
next candidate); read timeouts and other transport errors become ``UpstreamTimeout``
/ ``UpstreamError``. Any other status is returned to the caller, which reads the body
(``read_body``) or relays it, then ``finish``es the response: a response read to its
end gives its connection back to the pool, any other is closed (which makes the
serving application stop the generation).

The client is aiohttp's rather than httpx's for its CPU cost: relaying a request
costs a fraction of httpx's here (README, "What remains").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import aiohttp

from gateway.errors import UpstreamError, UpstreamTimeout, error_body

UNAVAILABLE_STATUS = frozenset({503})
#: Read buffer of a response; a stream's lines may be up to twice as long.
READ_BUFFER = 256 * 1024
_UNAVAILABLE_ERRORS = (
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
    aiohttp.ServerDisconnectedError,
)


class Unavailable(Exception):
    """This model cannot take the request now; another candidate may."""


class Upstream:
    """The serving application at ``base_url``: one session, its connection pool.

    ``base_url`` may carry a path prefix; request paths are appended to it.
    """

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")

    async def send(self, method: str, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
        """Send a request, its body left to read; the caller ``finish``es the response."""
        try:
            response = await self.session.request(method, self.base_url + path, **kwargs)
        except _UNAVAILABLE_ERRORS as exc:
            raise Unavailable(str(exc) or type(exc).__name__) from exc
        except TimeoutError as exc:
            raise UpstreamTimeout("The serving application did not answer in time.") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"The serving application failed: {type(exc).__name__}.") from exc
        if response.status in UNAVAILABLE_STATUS:
            finish(response)
            raise Unavailable(f"status {response.status}")
        return response

    async def get_json(self, path: str) -> Any:
        """``GET path`` as JSON; aiohttp's errors (and ``ValueError``) propagate."""
        async with self.session.get(self.base_url + path) as response:
            response.raise_for_status()
            return json.loads(await response.read())

    async def aclose(self) -> None:
        await self.session.close()


def create_client(
    base_url: str,
    *,
    connect_timeout: float,
    read_timeout: float,
    pool_size: int,
    trace_configs: Sequence[aiohttp.TraceConfig] = (),
) -> Upstream:
    """A pooled session; call from the running event loop (the app's lifespan)."""
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=pool_size, limit_per_host=pool_size),
        timeout=aiohttp.ClientTimeout(total=None, connect=connect_timeout, sock_read=read_timeout),
        trace_configs=list(trace_configs),
        read_bufsize=READ_BUFFER,
    )
    return Upstream(session, base_url)


def finish(response: aiohttp.ClientResponse) -> None:
    """Give a response's connection back when its body was read to the end, else close it."""
    if response.content.at_eof():
        response.release()
    else:
        response.close()


async def read_body(response: aiohttp.ClientResponse) -> bytes:
    """The whole body of a response; the response is finished afterwards."""
    try:
        return await response.read()
    except TimeoutError as exc:
        raise UpstreamTimeout("The serving application did not answer in time.") from exc
    except aiohttp.ClientError as exc:
        raise UpstreamError("The serving application broke off its answer.") from exc
    finally:
        finish(response)


def parse_json(body: bytes) -> Any:
    """An answer's body as JSON (``UpstreamError`` when it is not)."""
    try:
        return json.loads(body)
    except ValueError as exc:
        raise UpstreamError("The serving application sent an unreadable answer.") from exc


def error_payload(status: int, body: bytes) -> tuple[int, dict[str, Any]]:
    """Status and OpenAI error body for a non-2xx upstream answer.

    4xx bodies in the OpenAI shape pass through; server errors become 502.
    """
    try:
        payload = parse_json(body)
    except UpstreamError:
        payload = None
    error = payload.get("error") if isinstance(payload, dict) else None
    if status >= 500:
        message = "The serving application failed"
        if isinstance(error, dict):
            message += f": {error.get('message', '')}"
        return 502, error_body(message, error_type="upstream_error", code="upstream_error")
    if isinstance(error, dict):
        return status, payload
    return status, error_body(
        f"The serving application refused the request (status {status}).",
        error_type="invalid_request_error",
    )
