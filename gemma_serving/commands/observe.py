"""``gemma-serving dashboards``: write the Grafana dashboards of ``gemma_serving.dashboards``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

CHART_DASHBOARDS = Path("helm/gemma-serving/dashboards")


def dashboards_command(
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Directory to write <name>.json into.")
    ] = CHART_DASHBOARDS,
) -> None:
    """Build the Grafana dashboards as code and write them as JSON (the chart's by default)."""
    from gemma_serving.dashboards import DASHBOARDS, render

    output.mkdir(parents=True, exist_ok=True)
    for name in DASHBOARDS:
        path = output / f"{name}.json"
        path.write_text(render(name), encoding="utf-8")
        typer.echo(f"wrote {path}", err=True)


def register(app: typer.Typer) -> None:
    """Add ``dashboards`` to the root command."""
    app.command("dashboards")(dashboards_command)
