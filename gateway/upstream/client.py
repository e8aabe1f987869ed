"""HTTP calls to the serving application through one pooled ``httpx.AsyncClient``.

``send`` sorts failures: a refused connection or a 503 means *this model cannot take
the request now* (``Unavailable``; routing tries the next candidate); timeouts and
other transport errors become ``UpstreamTimeout`` / ``UpstreamError``. Any other
status is returned to the caller, which passes 4xx bodies through unchanged.
"""

from __future__ import annotations

from typing import Any

import httpx

from gateway.errors import UpstreamError, UpstreamTimeout, error_body

UNAVAILABLE_STATUS = frozenset({503})
_UNAVAILABLE_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError)


class Unavailable(Exception):
    """This model cannot take the request now; another candidate may."""


def create_client(
    base_url: str, *, connect_timeout: float, read_timeout: float, pool_size: int
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(read_timeout, connect=connect_timeout, pool=connect_timeout),
        limits=httpx.Limits(max_connections=pool_size, max_keepalive_connections=pool_size),
    )


async def send(client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    """Send a request with its body streamed back; the caller closes the response."""
    try:
        response = await client.send(request, stream=True)
    except _UNAVAILABLE_ERRORS as exc:
        raise Unavailable(str(exc) or type(exc).__name__) from exc
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout("The serving application did not answer in time.") from exc
    except httpx.HTTPError as exc:
        raise UpstreamError(f"The serving application failed: {type(exc).__name__}.") from exc
    if response.status_code in UNAVAILABLE_STATUS:
        await response.aclose()
        raise Unavailable(f"status {response.status_code}")
    return response


async def read_body(response: httpx.Response) -> bytes:
    """The whole body of a streamed response; the response is closed afterwards."""
    try:
        return await response.aread()
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout("The serving application did not answer in time.") from exc
    except httpx.HTTPError as exc:
        raise UpstreamError("The serving application broke off its answer.") from exc
    finally:
        await response.aclose()


async def read_json(response: httpx.Response) -> Any:
    """The whole body of a streamed response, as JSON (``UpstreamError`` when it is not)."""
    await read_body(response)
    try:
        return response.json()
    except ValueError as exc:
        raise UpstreamError("The serving application sent an unreadable answer.") from exc


async def error_payload(response: httpx.Response) -> tuple[int, dict[str, Any]]:
    """Status and OpenAI error body for a non-2xx upstream answer.

    4xx bodies in the OpenAI shape pass through; server errors become 502.
    """
    try:
        body = await read_json(response)
    except UpstreamError:
        body = None
    status = response.status_code
    if status >= 500:
        message = "The serving application failed"
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            message += f": {body['error'].get('message', '')}"
        return 502, error_body(message, error_type="upstream_error", code="upstream_error")
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return status, body
    return status, error_body(
        f"The serving application refused the request (status {status}).",
        error_type="invalid_request_error",
    )
