"""A local Prometheus scraping a running stack: the gateway and every Ray node's metrics port.

``gemma-serving serve --observe`` (``make observe``) starts one beside the dev stack so
the dashboards' queries and the alert rules can be tried on this machine; the
integration tests start the same one against the test stack. Prometheus is Debian's
``prometheus`` package (``make install`` brings it with promtool).

Every target gets the label ``namespace`` (the chart's alert rules and dashboards select
on it, as the Prometheus operator's monitors add it on Kubernetes).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from gemma_serving.processes import stop

DEFAULT_PORT = 9090
LOCAL_NAMESPACE = "local"


def ray_metrics_targets() -> list[str]:
    """``host:port`` of each alive Ray node's metrics export port (Ray must be connected)."""
    import ray

    return [
        f"{node['NodeManagerAddress']}:{node['MetricsExportPort']}"
        for node in ray.nodes()
        if node.get("Alive") and node.get("MetricsExportPort")
    ]


def scrape_config(
    *,
    gateway: str | None,
    ray_targets: Sequence[str],
    namespace: str = LOCAL_NAMESPACE,
    interval: str = "5s",
    rule_files: Sequence[str] = (),
) -> dict[str, Any]:
    """A Prometheus configuration: the gateway's /metrics and Ray's metrics ports."""
    jobs: list[dict[str, Any]] = []
    if gateway is not None:
        host = httpx.URL(gateway)
        jobs.append(
            {
                "job_name": "gemma-gateway",
                "scheme": host.scheme,
                "metrics_path": "/metrics",
                "static_configs": [
                    {"targets": [f"{host.host}:{host.port}"], "labels": {"namespace": namespace}}
                ],
            }
        )
    if ray_targets:
        jobs.append(
            {
                "job_name": "ray",
                "static_configs": [
                    {"targets": list(ray_targets), "labels": {"namespace": namespace}}
                ],
            }
        )
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": list(rule_files),
        "scrape_configs": jobs,
    }


def binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        raise RuntimeError("prometheus is not installed (`make install` brings it)")
    return found


@contextmanager
def running_prometheus(
    config: dict[str, Any], home: Path, *, port: int = DEFAULT_PORT, timeout: float = 60.0
) -> Iterator[str]:
    """Run Prometheus with ``config`` (files under ``home``) until the block ends; its URL."""
    home.mkdir(parents=True, exist_ok=True)
    config_path = home / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    url = f"http://127.0.0.1:{port}"
    with (home / "prometheus.log").open("ab") as log:
        process = subprocess.Popen(
            [
                binary(),
                f"--config.file={config_path}",
                f"--storage.tsdb.path={home / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1d",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_ready(url, process, timeout)
        yield url
    finally:
        stop(process)


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prometheus exited with {process.returncode} while starting")
        try:
            if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"prometheus did not become ready at {url}")
