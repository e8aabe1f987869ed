"""How long and how much the HTTP server waits for and takes from one connection.

Read from ``GATEWAY_SERVER__*``; applied by ``gateway.server.protocol`` to every
connection, whichever way uvicorn was started (``gemma-serving gateway`` or the image's
``uvicorn --http gateway.server.protocol:GatewayHttpProtocol``).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

#: Request line and headers together (nginx's default large header buffers are 32 KiB).
DEFAULT_MAX_HEADER_BYTES = 64 * 1024


class ServerSettings(BaseModel):
    """Per-connection limits of the gateway's HTTP server (uvicorn, httptools parser).

    ``header_timeout`` runs from the first byte of a request to the end of its headers;
    ``keep_alive_timeout`` closes a connection without a request in progress, before its
    first request as after each answer; ``unread_body_timeout`` bounds how long a body
    answered before it was read is still taken in. Bodies the app reads have their own
    deadlines (``RequestLimits.body_timeout`` and ``body_stall_timeout``).
    """

    header_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a request's line and headers may take from their first byte "
        "(408 and the connection closed after it).",
    )
    keep_alive_timeout: float = Field(
        default=5.0,
        gt=0,
        description="Seconds an idle connection (no request in progress) stays open, before "
        "its first request and between requests; replaces uvicorn's --timeout-keep-alive. "
        "Behind a load balancer that reuses connections, set it above the balancer's own.",
    )
    unread_body_timeout: float = Field(
        default=5.0,
        gt=0,
        description="Seconds the rest of a body is still received (and dropped) after its "
        "request was answered without reading it (401, 413, ...); then the connection closes.",
    )
    max_header_bytes: int = Field(
        default=DEFAULT_MAX_HEADER_BYTES,
        ge=1024,
        description="Largest request line plus headers, in bytes (431 above it).",
    )
    max_connections: int | None = Field(
        default=2048,
        ge=1,
        description="Open connections (or running requests) past which uvicorn answers new "
        "requests with 503; replaces uvicorn's --limit-concurrency (unset: no limit).",
    )
