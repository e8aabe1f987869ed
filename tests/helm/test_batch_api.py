"""The Batch API on GKE (``gateway.batchApi``): image, Ray address, files volume, settings.

Off, the gateway is exactly the plain gateway. On, the gateway runs from the Ray image
(Ray Client needs the cluster's Ray and Python versions), reaches the RayService head's
client port through the Service KubeRay keeps in front of the head, and keeps its files on
a ReadWriteMany claim mounted where ``GATEWAY_BATCHES__FILES_DIR`` points.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import helm_python
import pytest
import yaml

from tests.helm import chart
from tests.helm.gateway_env import settings_from, unread_names

ON: dict[str, Any] = {"gateway": {"batchApi": {"enabled": True}}}
DOCKER = chart.REPO / "docker"


def _on(**batch: Any) -> dict[str, Any]:
    return {"gateway": {"batchApi": {"enabled": True, **batch}}}


def _gateway_pod(rendered: chart.Rendered) -> dict[str, Any]:
    spec: dict[str, Any] = rendered.one("Deployment", "-gateway")["spec"]["template"]["spec"]
    return spec


def _container(rendered: chart.Rendered) -> dict[str, Any]:
    container: dict[str, Any] = _gateway_pod(rendered)["containers"][0]
    return container


def _head_container(rendered: chart.Rendered) -> dict[str, Any]:
    head = rendered.one("RayService")["spec"]["rayClusterConfig"]["headGroupSpec"]
    container: dict[str, Any] = head["template"]["spec"]["containers"][0]
    return container


def test_off_the_gateway_is_the_plain_gateway() -> None:
    rendered = chart.render()
    container, pod = _container(rendered), _gateway_pod(rendered)
    env = chart.env_of(container)
    assert not rendered.has("PersistentVolumeClaim")
    assert env["GATEWAY_BATCHES__ENABLED"]["value"] == "false"
    assert [n for n in env if n.startswith("GATEWAY_BATCHES__")] == ["GATEWAY_BATCHES__ENABLED"]
    assert "HOME" not in env
    assert container["image"] == "gemma-serving/gateway:0.1.0"
    assert "command" not in container, "the gateway image's own ENTRYPOINT runs"
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "1Gi"}
    assert [v["name"] for v in pod["volumes"]] == ["tmp"]
    assert "supplementalGroups" not in pod["securityContext"]


def test_on_every_variable_is_a_gateway_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    rendered = chart.render(ON)
    env = chart.env_of(_container(rendered))
    assert unread_names(env) == set()
    settings = settings_from(env, monkeypatch).batches
    assert settings.enabled is True
    assert settings.ray_address == env["GATEWAY_BATCHES__RAY_ADDRESS"]["value"]
    assert settings.serve_app == "gemma"
    assert settings.files_dir == Path("/var/lib/gemma-serving/batch-files")


def test_ray_address_is_the_head_service_client_port() -> None:
    """KubeRay names the RayService's head Service ``<rayservice>-head-svc`` and gives it
    the head container's ports; the Ray Client server listens on the ``client`` one."""
    rendered = chart.render(ON)
    address = urlsplit(chart.env_of(_container(rendered))["GATEWAY_BATCHES__RAY_ADDRESS"]["value"])
    rayservice = rendered.one("RayService")["metadata"]["name"]
    assert address.scheme == "ray"
    assert address.hostname == f"{rayservice}-head-svc.{chart.NAMESPACE}.svc"
    ports = {p["name"]: p["containerPort"] for p in _head_container(rendered)["ports"]}
    assert address.port == ports["client"] == 10001


def test_a_moved_client_port_moves_everywhere() -> None:
    values = chart.deep_merge(
        ON, {"serving": {"head": {"rayStartParams": {"ray-client-server-port": "10002"}}}}
    )
    rendered = chart.render(values)
    address = chart.env_of(_container(rendered))["GATEWAY_BATCHES__RAY_ADDRESS"]["value"]
    assert address.endswith(":10002")
    ports = {p["name"]: p["containerPort"] for p in _head_container(rendered)["ports"]}
    assert ports["client"] == 10002
    policy = rendered.one("NetworkPolicy", "-ray")
    assert {"port": 10002, "protocol": "TCP"} in [
        p for r in policy["spec"]["ingress"] for p in r.get("ports", [])
    ]


@pytest.mark.parametrize("example", chart.example_names())
def test_serve_app_is_the_profiles_catalog_application(example: str) -> None:
    values = chart.example_values(example)
    config = yaml.safe_load(
        (chart.SERVE_CONFIGS / f"{values['serving']['profile']}.yaml").read_text()
    )
    [app] = [a for a in config["applications"] if a["import_path"] == "serving.app:build_app"]
    env = chart.env_of(_container(chart.render_example(example, ON)))
    assert env["GATEWAY_BATCHES__SERVE_APP"]["value"] == app["name"]


def test_on_the_gateway_runs_the_ray_image_with_uvicorn() -> None:
    values = chart.deep_merge(ON, {"serving": {"image": {"tag": "1.2.3"}}})
    rendered = chart.render(values)
    container = _container(rendered)
    assert (
        container["image"] == _head_container(rendered)["image"] == "gemma-serving/ray-worker:1.2.3"
    )
    digest = "sha256:" + "a" * 64
    pinned = chart.render(chart.deep_merge(ON, {"serving": {"image": {"digest": digest}}}))
    assert _container(pinned)["image"] == f"gemma-serving/ray-worker@{digest}"
    own = chart.render(_on(image={"repository": "registry.example/batch-gateway", "tag": "7"}))
    assert _container(own)["image"] == "registry.example/batch-gateway:7"


def _entrypoint(dockerfile: str) -> list[str]:
    [line] = [
        x for x in (DOCKER / dockerfile).read_text().splitlines() if x.startswith("ENTRYPOINT ")
    ]
    return list(json.loads(line.removeprefix("ENTRYPOINT ")))


def _written_log_config(dockerfile: str) -> str:
    text = (DOCKER / dockerfile).read_text()
    [path] = re.findall(r"write_log_config\('([^']+\.json)'\)", text)
    return path


def test_command_is_the_gateway_entrypoint_with_the_ray_images_log_config() -> None:
    command = _container(chart.render(ON))["command"]
    gateway_image = _entrypoint("gateway.Dockerfile")
    expected = [
        _written_log_config("ray-worker.Dockerfile")
        if arg == _written_log_config("gateway.Dockerfile")
        else arg
        for arg in gateway_image
    ]
    assert command == expected
    assert "--log-config" in command


def test_the_ray_image_ships_the_batch_package() -> None:
    dockerfile = (DOCKER / "ray-worker.Dockerfile").read_text()
    assert re.search(r"^COPY .* batch \./batch$", dockerfile, re.MULTILINE)
    assert "batch.ray_engine" in dockerfile
    ignore = (DOCKER / "ray-worker.Dockerfile.dockerignore").read_text().splitlines()
    assert "!batch/" in ignore


def test_files_live_on_a_read_write_many_claim_at_files_dir() -> None:
    rendered = chart.render(ON)
    claim = rendered.one("PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["spec"]["storageClassName"] == "standard-rwx"
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Ti"
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    pod, container = _gateway_pod(rendered), _container(rendered)
    volumes = {v["name"]: v for v in pod["volumes"]}
    files_dir = chart.env_of(container)["GATEWAY_BATCHES__FILES_DIR"]["value"]
    [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == files_dir]
    assert not mount.get("readOnly")
    claim_name = volumes[mount["name"]]["persistentVolumeClaim"]["claimName"]
    assert claim_name == claim["metadata"]["name"]


def test_the_gateway_user_can_write_the_files_and_read_the_ray_image() -> None:
    pod = _gateway_pod(chart.render(ON))
    security = pod["securityContext"]
    assert (security["runAsUser"], security["fsGroup"]) == (10001, 10001)
    assert security["fsGroupChangePolicy"] == "OnRootMismatch"
    assert security["supplementalGroups"] == [100]  # the Ray image's group "users"
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert chart.env_of(container)["HOME"]["value"] == "/tmp"
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_an_existing_claim_renders_no_claim() -> None:
    rendered = chart.render(_on(files={"existingClaim": "shared-files", "mountPath": "/files"}))
    assert not rendered.has("PersistentVolumeClaim")
    volumes = {v["name"]: v for v in _gateway_pod(rendered)["volumes"]}
    assert volumes["batch-files"]["persistentVolumeClaim"] == {"claimName": "shared-files"}
    assert chart.env_of(_container(rendered))["GATEWAY_BATCHES__FILES_DIR"]["value"] == "/files"


def test_on_the_gateway_gets_the_batch_resources() -> None:
    resources = _container(chart.render(ON))["resources"]
    assert resources["limits"]["memory"] == "4Gi"
    assert resources["requests"]["memory"] == "3Gi"


def test_without_serving_the_address_and_app_are_required() -> None:
    values: dict[str, Any] = {
        "serving": {"enabled": False},
        "gateway": {"upstreamUrl": "http://serve.other.svc:8000", "batchApi": {"enabled": True}},
    }
    with pytest.raises(helm_python.HelmRenderError, match="rayAddress is required"):
        chart.render(values)
    values = chart.deep_merge(values, _on(rayAddress="ray://head.other.svc:10001"))
    with pytest.raises(helm_python.HelmRenderError, match="serveApp is required"):
        chart.render(values)
    rendered = chart.render(chart.deep_merge(values, _on(serveApp="other")))
    env = chart.env_of(_container(rendered))
    assert env["GATEWAY_BATCHES__RAY_ADDRESS"]["value"] == "ray://head.other.svc:10001"
    assert env["GATEWAY_BATCHES__SERVE_APP"]["value"] == "other"


def test_values_schema_checks_the_batch_options() -> None:
    with pytest.raises(helm_python.HelmValuesError, match="rayAddress"):
        chart.render(_on(rayAddress="http://head:10001"))
    with pytest.raises(helm_python.HelmValuesError, match="mountPath"):
        chart.render(_on(files={"mountPath": "relative"}))
