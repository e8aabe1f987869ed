"""The exported Ray Serve config: serveConfigV2 shape, Ray's schema, and a faithful round trip."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from serving.app import AppArgs, serving_args
from serving.catalog import CPU, Catalog, load_catalog
from serving.config_export import BUILDER_IMPORT_PATH, serve_config, serve_config_yaml

HOME = "/srv/gemma"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def profiles() -> list[str]:
    return sorted(load_catalog().profiles)


def application(text: str) -> dict[str, Any]:
    config = yaml.safe_load(text)
    [app] = config["applications"]
    return app


@pytest.mark.parametrize("profile", profiles())
def test_shape_is_a_serve_config_file(catalog: Catalog, profile: str) -> None:
    text = serve_config_yaml(catalog, profile)
    assert text.startswith(f"# Ray Serve config for the '{profile}' profile")
    config = yaml.safe_load(text)
    assert config["proxy_location"] == "EveryNode"
    assert config["http_options"] == {"host": "0.0.0.0", "port": 8000}
    app = application(text)
    assert app["name"] == "gemma"
    assert app["route_prefix"] == "/"
    assert app["import_path"] == BUILDER_IMPORT_PATH == "serving.app:build_app"
    assert app["args"]["profile"] == profile
    assert set(app["args"]) == {"profile", "catalog"}
    # Serve's controller, proxies and this application's replicas log JSON lines.
    assert config["logging_config"]["encoding"] == app["logging_config"]["encoding"] == "JSON"


@pytest.mark.parametrize("profile", profiles())
def test_round_trip_builds_the_same_llm_configs(catalog: Catalog, profile: str) -> None:
    args = application(serve_config_yaml(catalog, profile))["args"]
    from_yaml = serving_args(AppArgs.model_validate({**args, "models_home": HOME}))
    direct = serving_args(AppArgs(profile=profile, catalog=catalog, models_home=HOME))
    assert from_yaml == direct
    assert len(from_yaml["llm_configs"]) == len(catalog.profile(profile).variants)


def test_embedded_catalog_is_only_the_profiles_slice(catalog: Catalog) -> None:
    embedded = application(serve_config_yaml(catalog, "gke-l4"))["args"]["catalog"]
    assert list(embedded["profiles"]) == ["gke-l4"]
    assert set(embedded["variants"]) == set(catalog.profile("gke-l4").variants)
    assert list(embedded["gpus"]) == ["nvidia-l4"]
    for variant in embedded["variants"].values():
        assert list(variant["engines"]) == ["nvidia-l4"]


def test_cpu_config_keeps_sources_symbolic(catalog: Catalog) -> None:
    text = serve_config_yaml(catalog, "cpu-dev")
    assert "local:gemma-3-270m" in text
    assert "fixture:tiny-random-gemma-4" in text
    assert "/.cache/" not in text  # resolved on the cluster's nodes, not here


def test_options(catalog: Catalog) -> None:
    config = serve_config(catalog, "gke-h100", app_name="g", route_prefix="/llm", port=9000)
    assert config["http_options"]["port"] == 9000
    assert config["applications"][0]["name"] == "g"
    assert config["applications"][0]["route_prefix"] == "/llm"


@pytest.mark.parametrize("profile", profiles())
def test_ray_accepts_the_config(catalog: Catalog, profile: str) -> None:
    from ray.serve.schema import ServeDeploySchema

    schema = ServeDeploySchema.model_validate(yaml.safe_load(serve_config_yaml(catalog, profile)))
    assert schema.applications[0].import_path == BUILDER_IMPORT_PATH
    assert schema.logging_config is not None
    assert schema.logging_config.encoding == "JSON"
    assert schema.applications[0].logging_config is not None
    assert schema.applications[0].logging_config.encoding == "JSON"


def test_editing_the_catalog_changes_the_export(catalog: Catalog) -> None:
    data = catalog.model_dump()
    data["variants"]["gemma-3-270m"]["engines"][CPU]["max_num_seqs"] = 2
    edited = Catalog.model_validate(data)
    args = application(serve_config_yaml(edited, "cpu-text"))["args"]
    built = serving_args(AppArgs.model_validate(args))
    assert built["llm_configs"][0]["engine_kwargs"]["max_num_seqs"] == 2
