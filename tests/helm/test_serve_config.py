"""One source of truth: the chart's serveConfigV2 is what `gemma-serving serve-config` writes.

The chart cannot run Python, so the generator's output for each GKE profile is committed
under ``serve-configs/``. These tests regenerate every profile with the real generator
and compare it with the committed file and with the rendered RayService.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python
import pytest
import typer
import yaml
from typer.testing import CliRunner

from gemma_serving.commands import serving as serving_commands
from serving.catalog import CPU, Catalog, load_catalog
from serving.config_export import serve_config_yaml
from tests.helm import chart

REGENERATE = (
    "regenerate with: gemma-serving serve-config --profile {p} "
    "-o helm/gemma-serving/serve-configs/{p}.yaml"
)


def _catalog() -> Catalog:
    return load_catalog()


def gke_profiles() -> list[str]:
    return sorted(name for name, p in _catalog().profiles.items() if p.target != CPU)


def _committed(profile: str) -> str:
    return (chart.SERVE_CONFIGS / f"{profile}.yaml").read_text()


def test_the_chart_carries_exactly_the_catalogs_gke_profiles() -> None:
    committed = sorted(p.stem for p in chart.SERVE_CONFIGS.glob("*.yaml"))
    assert committed == gke_profiles()
    assert {"gke-l4", "gke-h100"} <= set(committed)


@pytest.mark.parametrize("profile", gke_profiles())
def test_committed_config_is_what_the_generator_writes(profile: str) -> None:
    generated = serve_config_yaml(_catalog(), profile)
    assert _committed(profile) == generated, REGENERATE.format(p=profile)


@pytest.mark.parametrize("profile", gke_profiles())
def test_the_serve_config_command_writes_the_committed_file(
    profile: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)  # the committed files are made without tracing
    app = typer.Typer()
    serving_commands.register(app)
    out = tmp_path / f"{profile}.yaml"
    result = CliRunner().invoke(app, ["serve-config", "--profile", profile, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text() == _committed(profile), REGENERATE.format(p=profile)


@pytest.mark.parametrize("profile", gke_profiles())
def test_rendered_serve_config_v2_equals_the_generator_output(profile: str) -> None:
    groups: dict[str, dict[str, Any]] = {"l4": {"enabled": False}}
    accelerator = _catalog().gpus[_catalog().profiles[profile].target].ray_accelerator_type
    groups["gpu"] = {"enabled": True, "accelerator": accelerator, "gpusPerWorker": 1}
    rendered = chart.render({"serving": {"profile": profile, "workerGroups": groups}})
    serve_config_v2 = rendered.one("RayService")["spec"]["serveConfigV2"]
    generated = serve_config_yaml(_catalog(), profile)
    assert yaml.safe_load(serve_config_v2) == yaml.safe_load(generated)
    # Helm's block scalar keeps the text, not only the data.
    assert serve_config_v2.strip() == generated.strip()


@pytest.mark.parametrize("example", chart.example_names())
def test_examples_embed_their_profile(example: str) -> None:
    values = chart.example_values(example)
    profile = values["serving"]["profile"]
    assert profile == example
    rayservice = chart.render_example(example).one("RayService")
    assert rayservice["metadata"]["labels"]["gemma-serving/profile"] == profile
    assert yaml.safe_load(rayservice["spec"]["serveConfigV2"]) == yaml.safe_load(
        serve_config_yaml(_catalog(), profile)
    )


def test_unknown_profile_fails_with_the_regeneration_command() -> None:
    with pytest.raises(helm_python.HelmRenderError, match="serve-config --profile gke-tpu"):
        chart.render({"serving": {"profile": "gke-tpu"}})
