"""The Ray Serve config of a profile: what KubeRay's ``RayService.spec.serveConfigV2`` holds.

The config names the same builder ``gemma-serving serve`` runs (``serving.app:build_app``)
and embeds the profile's slice of the catalog as its ``args``. The cluster therefore
builds exactly the ``LLMConfig``s this machine would, from the data exported here rather
than from whatever catalog file its image carries, and source paths (``local:``,
``fixture:``) resolve on the cluster's own nodes. Fully expanded ``build_openai_app``
args would freeze this machine's paths and duplicate the builder's logic in YAML.
"""

from __future__ import annotations

from typing import Any

import yaml

from serving.catalog import Catalog, to_data

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
) -> dict[str, Any]:
    """A Serve config file (``serve deploy`` / ``serveConfigV2`` schema) for ``profile``."""
    return {
        "proxy_location": "EveryNode",
        "http_options": {"host": host, "port": port},
        "applications": [
            {
                "name": app_name,
                "route_prefix": route_prefix,
                "import_path": BUILDER_IMPORT_PATH,
                "args": {"profile": profile, "catalog": to_data(catalog.subset(profile))},
            }
        ],
    }


def serve_config_yaml(catalog: Catalog, profile: str, **options: Any) -> str:
    """``serve_config`` as YAML, ready to paste under ``serveConfigV2: |``."""
    header = (
        f"# Ray Serve config for the {profile!r} profile, written by "
        f"`gemma-serving serve-config --profile {profile}`.\n"
    )
    body = yaml.safe_dump(serve_config(catalog, profile, **options), sort_keys=False, width=100)
    return header + body
