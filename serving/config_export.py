"""The Ray Serve config of a profile: what KubeRay's ``RayService.spec.serveConfigV2`` holds.

The config names the same builder ``gemma-serving serve`` runs (``serving.app:build_app``)
and embeds the profile's slice of the catalog as its ``args``. The cluster therefore
builds exactly the ``LLMConfig``s this machine would, from the data exported here rather
than from whatever catalog file its image carries, and source paths (``local:``,
``fixture:``) resolve on the cluster's own nodes. Fully expanded ``build_openai_app``
args would freeze this machine's paths and duplicate the builder's logic in YAML.

Serve's controller, proxies and replicas log JSON lines (``serving.logs``).

With a traces endpoint (``gemma-serving serve-config`` takes it from the standard
``OTEL_EXPORTER_OTLP_*`` variables) the config also turns on tracing: Ray Serve's
``tracing_config``, the OTLP variables in the application's ``runtime_env`` (the replicas
export with them) and the endpoint in the builder's args (the engines' spans). Ray Serve's
HTTP proxies read their tracing switches from their own environment only, so the Ray
containers need ``serving.tracing.tracing_env``'s variables as well.
"""

from __future__ import annotations

from typing import Any

import yaml

from serving.app import DIRECT_STREAMING_ENV
from serving.catalog import Catalog, to_data
from serving.logs import SERVE_LOGGING
from serving.tracing import serve_tracing_config, tracing_env

BUILDER_IMPORT_PATH = "serving.app:build_app"
APP_NAME = "gemma"


def serve_config(
    catalog: Catalog,
    profile: str,
    *,
    app_name: str = APP_NAME,
    route_prefix: str = "/",
    host: str = "0.0.0.0",
    port: int = 8000,
    traces_endpoint: str | None = None,
) -> dict[str, Any]:
    """A Serve config file (``serve deploy`` / ``serveConfigV2`` schema) for ``profile``.

    ``traces_endpoint`` (an OTLP/HTTP ``.../v1/traces`` URL) turns tracing on.
    """
    application: dict[str, Any] = {
        "name": app_name,
        "route_prefix": route_prefix,
        "import_path": BUILDER_IMPORT_PATH,
        "args": {"profile": profile, "catalog": to_data(catalog.subset(profile))},
        "logging_config": dict(SERVE_LOGGING),
    }
    config: dict[str, Any] = {
        "proxy_location": "EveryNode",
        "http_options": {"host": host, "port": port},
        "logging_config": dict(SERVE_LOGGING),
    }
    if traces_endpoint is not None:
        application["args"]["otlp_traces_endpoint"] = traces_endpoint
        application["runtime_env"] = {"env_vars": tracing_env(traces_endpoint)}
        config["tracing_config"] = serve_tracing_config(traces_endpoint)
    return {**config, "applications": [application]}


def serve_config_yaml(catalog: Catalog, profile: str, **options: Any) -> str:
    """``serve_config`` as YAML, ready to paste under ``serveConfigV2: |``."""
    header = (
        f"# Ray Serve config for the {profile!r} profile, written by "
        f"`gemma-serving serve-config --profile {profile}`.\n"
    )
    if catalog.profile(profile).direct_streaming:
        env = " ".join(f"{k}={v}" for k, v in DIRECT_STREAMING_ENV.items())
        header += f"# Direct streaming: every Ray pod needs {env} in its environment.\n"
    body = yaml.safe_dump(serve_config(catalog, profile, **options), sort_keys=False, width=100)
    return header + body
