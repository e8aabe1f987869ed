"""The gateway of ``gemma-serving serve``: its own process in front of the Serve app just started.

``make serve`` ends here: the gateway runs as ``gemma-serving gateway`` (a process of its
own: it imports neither Ray nor vLLM) until Ctrl-C, and the terminal shows its base URL
and the development API key to use with any OpenAI client. Its logs go where the
console's do (the log file, unless ``--logs``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import typer

from gemma_serving.commands.console import Console
from gemma_serving.processes import stop

GATEWAY_START_TIMEOUT_S = 60.0


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


def _wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + GATEWAY_START_TIMEOUT_S
    while process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the gateway did not answer {url} in time") from None
            time.sleep(0.2)
    raise RuntimeError(f"the gateway exited with {process.returncode} while starting")


def gateway_url() -> str:
    """Where ``run_gateway``'s gateway listens (``GATEWAY_HOST``/``GATEWAY_PORT``)."""
    from gateway.settings import GatewaySettings

    settings = GatewaySettings()
    return f"http://{settings.host}:{settings.port}"


@contextmanager
def run_gateway(console: Console, *, upstream_url: str) -> Iterator[subprocess.Popen[bytes]]:
    """Start the gateway (settings from ``GATEWAY_*``), say where it is, stop it on exit."""
    from gateway.settings import GatewaySettings

    settings = GatewaySettings(upstream_url=upstream_url)
    command = [sys.executable, "-m", "gemma_serving.cli", "gateway", "--upstream", upstream_url]
    process = subprocess.Popen(command, env={**os.environ, "GATEWAY_UPSTREAM_URL": upstream_url})
    try:
        _wait_healthy(f"http://{settings.host}:{settings.port}/healthz", process)
        base_url = f"http://{settings.host}:{settings.port}/v1"
        console.say(f'Gateway at {base_url}  (OpenAI API; model "auto" routes by capability)')
        if settings.quota.enabled:
            console.say(_dev_key_line(settings.quota.redis_url, settings.quota.key_prefix))
        else:
            console.say("API key:  not needed (GATEWAY_QUOTA__ENABLED=false)")
        yield process
    finally:
        stop(process, grace=10)


@contextmanager
def observing(console: Console, gateway_url: str | None, port: int) -> Iterator[None]:
    """A local Prometheus scraping the gateway and Ray's metrics ports; say where it is."""
    from gemma_serving.prometheus import ray_metrics_targets, running_prometheus, scrape_config
    from serving.models.store import gemma_home

    config = scrape_config(gateway=gateway_url, ray_targets=ray_metrics_targets())
    with running_prometheus(config, gemma_home() / "prometheus", port=port) as url:
        console.say(
            f"Prometheus at {url}  (graphs; the dashboards' queries are in "
            'helm/gemma-serving/dashboards, namespace="local")'
        )
        yield
