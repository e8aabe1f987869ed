"""``gemma-serving catalog | serve | serve-config``: the variant catalog and the Ray Serve app."""

from __future__ import annotations

import json
import signal
import time
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from gemma_serving.commands.console import Console, log_file_path

if TYPE_CHECKING:
    from serving.catalog import Catalog

CatalogOption = Annotated[
    Path | None,
    typer.Option(
        "--catalog",
        envvar="GEMMA_SERVING_CATALOG",
        help="Catalog YAML (default: $GEMMA_SERVING_CATALOG or the one shipped in serving/).",
    ),
]


def register(app: typer.Typer) -> None:
    """Add ``catalog``, ``serve`` and ``serve-config`` to the root command."""
    app.command("catalog")(catalog_command)
    app.command("serve")(serve_command)
    app.command("serve-config")(serve_config_command)


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _load(path: Path | None, profile: str | None = None) -> Catalog:
    from serving.catalog import load_catalog

    try:
        catalog = load_catalog(path)
        if profile is not None:
            catalog.profile(profile)
    except FileNotFoundError as exc:
        _fail(f"catalog file not found: {exc.filename}")
    except KeyError as exc:
        _fail(str(exc.args[0]))
    except ValueError as exc:  # pydantic's ValidationError, FitError
        _fail(f"invalid catalog: {exc}")
    return catalog


def catalog_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    profile: Annotated[
        str | None, typer.Option("--profile", help="Only this profile's variants.")
    ] = None,
    catalog: CatalogOption = None,
) -> None:
    """List the Gemma variants: capabilities, context, memory, engine profiles."""
    from serving.describe import summary, table

    loaded = _load(catalog, profile)
    if as_json:
        typer.echo(json.dumps(summary(loaded, profile), indent=2))
    else:
        typer.echo(table(loaded, profile))


def serve_config_command(
    profile: Annotated[str, typer.Option("--profile", help="Deployment profile.")],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write to FILE instead of stdout.")
    ] = None,
    host: Annotated[str, typer.Option(help="Serve proxy host.")] = "0.0.0.0",
    port: Annotated[int, typer.Option(help="Serve proxy port.")] = 8000,
    catalog: CatalogOption = None,
) -> None:
    """Print the Ray Serve config of a profile (YAML for KubeRay's serveConfigV2).

    With ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``) set, the config
    turns on Ray Serve's and the engines' tracing, exporting there.
    """
    from serving.config_export import serve_config_yaml
    from serving.tracing import traces_endpoint

    text = serve_config_yaml(
        _load(catalog, profile), profile, host=host, port=port, traces_endpoint=traces_endpoint()
    )
    if output is None:
        typer.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {output}", err=True)


def _prepare_local_models(catalog: Catalog, profile: str) -> None:
    """Build or verify the profile's local models and fixtures; fail on what is missing."""
    from serving.models.prepare import preparable, prepare_many
    from serving.runner import local_sources, missing_sources

    names = sorted({s.split(":", 1)[1] for s in local_sources(catalog, profile)})
    for prepared in prepare_many([n for n in names if n in preparable()]):
        typer.echo(f"{prepared.name}: ready at {prepared.path}")
    missing = missing_sources(catalog, profile)
    if missing:
        _fail(f"not on disk: {', '.join(missing)} (see `gemma-serving models prepare`)")


def _raise_interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


def _wait_for_interrupt() -> None:
    while True:
        time.sleep(3600)


def serve_command(
    profile: Annotated[str, typer.Option("--profile", help="Deployment profile.")] = "cpu-dev",
    host: Annotated[str, typer.Option(help="Address the Serve proxy binds.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the OpenAI endpoint.")] = 8000,
    num_cpus: Annotated[
        int | None, typer.Option(help="Logical CPUs for Ray (default: what the profile needs).")
    ] = None,
    prepare: Annotated[
        bool, typer.Option(help="Build or verify local models and fixtures first.")
    ] = True,
    ready_timeout: Annotated[float, typer.Option(help="Seconds to wait for every engine.")] = 900,
    gateway: Annotated[
        bool, typer.Option(help="Run the gateway in front ($GATEWAY_HOST:$GATEWAY_PORT).")
    ] = True,
    logs: Annotated[
        bool,
        typer.Option(
            "--logs/--quiet",
            help="Show Ray's, vLLM's and the gateway's logs here (default: a log file).",
        ),
    ] = False,
    observe: Annotated[
        bool, typer.Option(help="Run a local Prometheus scraping the gateway and Ray.")
    ] = False,
    observe_port: Annotated[int, typer.Option(help="Port of that Prometheus.")] = 9090,
    catalog: CatalogOption = None,
) -> None:
    """Run a profile's Ray Serve application (and the gateway in front) until Ctrl-C."""
    from serving.models.store import gemma_home

    loaded = _load(catalog, profile)
    if prepare:
        _prepare_local_models(loaded, profile)
    console = Console.loud() if logs else Console.quiet(log_file_path(gemma_home()))
    if console.log_path is not None:
        console.say(f"Logs:     {console.log_path}  (--logs shows them here)")
    try:
        observe_on = observe_port if observe else None
        _serve(console, loaded, profile, host, port, num_cpus, ready_timeout, gateway, observe_on)
    except KeyboardInterrupt:
        console.say("Stopping: draining requests, then shutting down Ray.")
    except (RuntimeError, TimeoutError) as exc:
        console.say(f"error: {exc}")
        raise typer.Exit(1) from exc


def _serve(
    console: Console,
    catalog: Catalog,
    profile: str,
    host: str,
    port: int,
    num_cpus: int | None,
    ready_timeout: float,
    gateway: bool,
    observe: int | None,
) -> None:
    """Start, wait for the engines, run the gateway (and Prometheus on port ``observe``)."""
    from gemma_serving.commands.stack import observing
    from serving.progress import EngineProgress
    from serving.runner import shutdown, start_serving, wait_ready

    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started ignoring it
    progress = EngineProgress(console.say)
    engines = len(catalog.profile_variants(profile))
    console.say(f"Starting Ray Serve ({profile}): {engines} engine{'s' * (engines != 1)}")
    try:
        serving = start_serving(profile, catalog=catalog, host=host, port=port, num_cpus=num_cpus)
        wait_ready(serving, timeout_s=ready_timeout, progress=progress)
        console.say(f"Serve at   {serving.base_url}: {', '.join(serving.model_ids)}")
        if gateway:
            from gemma_serving.commands.stack import gateway_url, run_gateway

            with (
                run_gateway(console, upstream_url=f"http://{host}:{port}") as process,
                observing(console, gateway_url(), observe) if observe else nullcontext(),
            ):
                console.say("Press Ctrl-C to stop.")
                returncode = process.wait()
            raise RuntimeError(f"the gateway exited with {returncode}")
        with observing(console, None, observe) if observe else nullcontext():
            console.say("Press Ctrl-C to stop.")
            _wait_for_interrupt()
    finally:
        shutdown()
