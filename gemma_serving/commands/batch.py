"""``gemma-serving batch run``: an OpenAI batch file through Ray Data LLM, resumable.

``--processor engine`` (the default) starts the profile's vLLM engines for the job with
Ray Data LLM's vLLM processor: a batch then needs nothing running, gets the whole machine
and never competes with online traffic for an engine's batch slots. ``--processor serve``
sends the lines to the engine deployments of a Serve application that is already up
(Ray Data LLM's Serve deployment processor), for clusters that serve anyway.

The summary (total, done, skipped, succeeded, failed, tokens in and out) is printed as
one JSON line on stdout; the progress bar goes to stderr.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gemma_serving.commands.serving import CatalogOption, _load
from serving.config_export import APP_NAME

if TYPE_CHECKING:
    from batch.engine import BatchEngine
    from serving.catalog import Catalog

app = typer.Typer(no_args_is_help=True, help="Offline batch inference on OpenAI batch files.")


class ProcessorKind(StrEnum):
    """``engine``: start vLLM engines for the job; ``serve``: use a running Serve app."""

    engine = "engine"
    serve = "serve"


def engine_factory(
    kind: ProcessorKind, catalog: Catalog, profile: str, batch_size: int, app_name: str
) -> BatchEngine:
    """The engine of a job: vLLM engines built from the catalog, or a Serve application."""
    if kind is ProcessorKind.serve:
        from batch.ray_engine import ServeProcessorEngine

        return ServeProcessorEngine(app_name, batch_size=batch_size)
    from batch.ray_engine import VariantEngineSpec, VllmProcessorEngine
    from serving.app import AppArgs, llm_config_data

    args = AppArgs(profile=profile, catalog=catalog)
    target = catalog.profile(profile).target
    specs = [
        VariantEngineSpec.from_llm_config(llm_config_data(catalog, v, target, args.home()))
        for v in catalog.profile_variants(profile)
    ]
    return VllmProcessorEngine(specs, batch_size=batch_size)


@app.command("run")
def run_command(
    input_path: Annotated[Path, typer.Argument(help="OpenAI batch input (JSONL).", exists=True)],
    output: Annotated[Path, typer.Option("-o", "--output", help="Batch output (JSONL).")],
    model: Annotated[
        str, typer.Option(help="Model of lines that name none: a variant, an alias or auto.")
    ] = "auto",
    profile: Annotated[str, typer.Option(help="Deployment profile (variants, engines).")] = (
        "cpu-dev"
    ),
    processor: Annotated[
        ProcessorKind,
        typer.Option(help="engine: own vLLM engines (default); serve: a running Serve app."),
    ] = ProcessorKind.engine,
    batch_size: Annotated[int, typer.Option(help="Rows per Ray Data batch.", min=1)] = 16,
    app_name: Annotated[
        str, typer.Option(help="Serve application (--processor serve).")
    ] = APP_NAME,
    catalog: CatalogOption = None,
) -> None:
    """Run (or resume) a batch: one output line per input line, errors included.

    Re-running with the same OUTPUT skips the custom_ids it already holds.
    """
    from batch.progress import TqdmProgress
    from batch.requests import RequestPlanner, profile_models
    from batch.runner import run_batch
    from gateway.settings import DEFAULT_ALIASES

    loaded = _load(catalog, profile)
    planner = RequestPlanner(
        profile_models(loaded, profile), aliases=DEFAULT_ALIASES, default_model=model
    )
    summary = run_batch(
        input_path,
        output,
        planner=planner,
        engine_factory=lambda: engine_factory(processor, loaded, profile, batch_size, app_name),
        progress=TqdmProgress(),
    )
    typer.echo(
        f"{summary.done}/{summary.total} lines done ({summary.skipped} earlier), "
        f"{summary.succeeded} answered, {summary.failed} failed; tokens in "
        f"{summary.prompt_tokens}, out {summary.completion_tokens}",
        err=True,
    )
    typer.echo(json.dumps(summary.as_dict()))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="batch", help="Offline batch inference on OpenAI batch files.")
