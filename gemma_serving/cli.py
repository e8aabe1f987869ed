"""The ``gemma-serving`` command: one entry point for models, serving, keys and batch.

Each command group lives in its own module under ``gemma_serving.commands`` and
imports its heavy dependencies (torch, ray, vllm) only when it runs.
"""

from __future__ import annotations

import typer

from gemma_serving.commands import batch, gateway, keys, models, observe, serving

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
app.add_typer(models.app, name="models", help="Prepare and list local model directories.")
app.add_typer(keys.app, name="keys", help="Create, list, revoke and limit API keys in Redis.")
serving.register(app)  # catalog, serve, serve-config
gateway.register(app)  # gateway
batch.register(app)  # batch run
observe.register(app)  # dashboards


def main() -> None:
    app()


if __name__ == "__main__":  # `python -m gemma_serving.cli`, as `serve` starts the gateway
    main()
