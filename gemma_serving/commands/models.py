"""``gemma-serving models``: prepare the embedded Gemma 3 270M and the test fixtures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True)

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="Cache folder (default: $GEMMA_SERVING_HOME or ~/.cache)."),
]


@app.command("prepare")
def prepare(
    names: Annotated[
        list[str] | None,
        typer.Argument(help="What to prepare (default: the embedded gemma-3-270m)."),
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="The embedded model and every test fixture.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even if verified.")] = False,
    home: HomeOption = None,
) -> None:
    """Convert the embedded model (and fixtures) into Hugging Face directories, or verify them."""
    from serving.models.prepare import preparable, prepare_many

    wanted = list(preparable()) if all_ else (names or ["gemma-3-270m"])
    for prepared in prepare_many(wanted, home=home, force=force):
        state = "built" if prepared.built else "verified"
        typer.echo(f"{prepared.name}: {state} at {prepared.path}")


@app.command("list")
def list_models(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    home: HomeOption = None,
) -> None:
    """List what can be prepared and whether it is on disk."""
    from serving.models.prepare import status

    rows = status(home)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        typer.echo(f"{row['name']:<28} {row['kind']:<8} {row['state']:<10} {row['path']}")
