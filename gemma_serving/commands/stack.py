"""The gateway of ``gemma-serving serve``: in front of the Serve app just started, with a dev key.

``make serve`` ends here: the gateway runs in this process (uvicorn, until Ctrl-C) and
prints the base URL and the development API key to use with any OpenAI client.
"""

from __future__ import annotations

import typer


def _dev_key_line(redis_url: str, key_prefix: str) -> str:
    from gateway.errors import GatewayError
    from gemma_serving.commands.keys import obtain_dev_key

    try:
        secret, _, path = obtain_dev_key(redis_url, key_prefix)
    except (GatewayError, OSError, typer.Exit):
        return (
            f"API key:  none yet: Redis at {redis_url} did not answer. Start redis-server, "
            "then run `gemma-serving keys dev` (or `keys create`)."
        )
    return f"API key:  {secret}  (development key, kept in {path}; `gemma-serving keys --help`)"


def run_gateway(*, upstream_url: str) -> None:
    """Serve the gateway (settings from ``GATEWAY_*``) until interrupted."""
    import uvicorn

    from gateway.app import create_app
    from gateway.settings import GatewaySettings

    settings = GatewaySettings(upstream_url=upstream_url)
    base_url = f"http://{settings.host}:{settings.port}/v1"
    typer.echo(f'Gateway at {base_url}  (OpenAI API; model "auto" routes by capability)')
    if settings.quota.enabled:
        typer.echo(_dev_key_line(settings.quota.redis_url, settings.quota.key_prefix))
    else:
        typer.echo("API key:  not needed (GATEWAY_QUOTA__ENABLED=false)")
    typer.echo("Press Ctrl-C to stop.")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning")
