"""``gemma-serving gateway``: the OpenAI-compatible gateway, run by uvicorn.

Settings come from ``GATEWAY_*`` environment variables (see ``gateway.settings``);
``--host``, ``--port`` and ``--upstream`` override the matching ones; uvicorn runs the
gateway's HTTP protocol (``gateway.server.protocol``: header, idle and unread-body
deadlines from ``GATEWAY_SERVER__*``). Logs are JSON lines with the request's trace id
(``gateway.telemetry.logs``); traces are exported when the standard
``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer


def gateway_command(
    host: Annotated[str | None, typer.Option(help="Listen address ($GATEWAY_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port ($GATEWAY_PORT).")] = None,
    upstream: Annotated[
        str | None, typer.Option(help="Serving application URL ($GATEWAY_UPSTREAM_URL).")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes.")] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Run the gateway in front of the serving application."""
    import uvicorn

    from gateway.server.protocol import IMPORT_STRING
    from gateway.settings import GatewaySettings
    from gateway.telemetry.logs import log_config

    for name, value in (("HOST", host), ("PORT", port), ("UPSTREAM_URL", upstream)):
        if value is not None:
            os.environ[f"GATEWAY_{name}"] = str(value)  # workers re-read the environment
    settings = GatewaySettings()
    uvicorn.run(
        "gateway.app:create_app_from_env",
        factory=True,
        http=IMPORT_STRING,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_level=log_level,
        log_config=log_config(log_level),
        proxy_headers=False,
    )


def register(app: typer.Typer) -> None:
    app.command("gateway")(gateway_command)
