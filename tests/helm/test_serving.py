"""RayService wiring: worker groups per GPU type, GKE scheduling, volumes, autoscaling bounds."""

from __future__ import annotations

import json
import math
from typing import Any

import helm_python
import pytest

from serving.catalog import Catalog, load_catalog
from tests.helm import chart

# GKE's accelerator node label for each Ray accelerator type (the catalog's GPU names).
GKE_LABELS = {"L4": "nvidia-l4", "H100": "nvidia-h100-80gb", "A100-80G": "nvidia-a100-80gb"}


def _cluster(rendered: chart.Rendered) -> dict[str, Any]:
    cluster: dict[str, Any] = rendered.one("RayService")["spec"]["rayClusterConfig"]
    return cluster


def _groups(rendered: chart.Rendered) -> dict[str, dict[str, Any]]:
    return {g["groupName"]: g for g in _cluster(rendered).get("workerGroupSpecs", [])}


def gpu_demand(catalog: Catalog, profile: str) -> tuple[int, int]:
    """GPUs the profile's variants need at their min and max replicas (Python's view)."""
    target = catalog.profiles[profile].target
    low = high = 0
    for variant in catalog.profile_variants(profile):
        scaling = variant.autoscaling_for(target)
        tp = variant.engines[target].tensor_parallel_size
        low += scaling.min_replicas * tp
        high += scaling.max_replicas * tp
    return low, high


@pytest.mark.parametrize("example", chart.example_names())
def test_worker_groups_match_the_profiles_gpu_type(example: str) -> None:
    catalog = load_catalog()
    profile = catalog.profiles[example]
    gpu = catalog.gpus[profile.target]
    groups = _groups(chart.render_example(example))
    assert len(groups) == 1
    (group,) = groups.values()
    spec = group["template"]["spec"]
    assert spec["nodeSelector"]["cloud.google.com/gke-accelerator"] == profile.target
    assert GKE_LABELS[gpu.ray_accelerator_type] == profile.target
    resources = group["rayStartParams"]["resources"]
    declared = json.loads(resources[1:-1].replace("\\", ""))
    assert declared == {f"accelerator_type:{gpu.ray_accelerator_type}": 1}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec[
        "tolerations"
    ]
    worker = spec["containers"][0]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert worker["resources"]["requests"]["nvidia.com/gpu"] == 1


@pytest.mark.parametrize("example", chart.example_names())
def test_autoscaling_bounds_follow_the_variants(example: str) -> None:
    low, high = gpu_demand(load_catalog(), example)
    (group,) = _groups(chart.render_example(example)).values()
    per_pod = group["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]
    assert group["minReplicas"] == math.ceil(low / per_pod)
    assert group["maxReplicas"] == math.ceil(high / per_pod)
    assert group["replicas"] == group["minReplicas"]
    assert _cluster(chart.render_example(example))["enableInTreeAutoscaling"] is True


def test_bounds_round_up_for_multi_gpu_pods() -> None:
    low, high = gpu_demand(load_catalog(), "gke-l4")
    values = {"serving": {"workerGroups": {"l4": {"gpusPerWorker": 4}}}}
    group = _groups(chart.render(values))["l4"]
    assert (group["minReplicas"], group["maxReplicas"]) == (
        math.ceil(low / 4),
        math.ceil(high / 4),
    )


def test_explicit_bounds_win() -> None:
    values = {"serving": {"workerGroups": {"l4": {"minReplicas": 6, "maxReplicas": 8}}}}
    group = _groups(chart.render(values))["l4"]
    assert (group["replicas"], group["minReplicas"], group["maxReplicas"]) == (6, 6, 8)


def test_bounds_that_cannot_hold_min_replicas_fail() -> None:
    low, _ = gpu_demand(load_catalog(), "gke-l4")
    values = {"serving": {"workerGroups": {"l4": {"maxReplicas": low - 1}}}}
    with pytest.raises(helm_python.HelmRenderError, match="cannot hold"):
        chart.render(values)


def test_a_profile_without_its_gpu_group_fails() -> None:
    values = {"serving": {"profile": "gke-h100"}}
    with pytest.raises(helm_python.HelmRenderError, match="needs H100 GPUs"):
        chart.render(values)


def test_unknown_accelerator_is_refused_by_the_schema() -> None:
    with pytest.raises(helm_python.HelmValuesError):
        chart.render({"serving": {"workerGroups": {"l4": {"accelerator": "TPU"}}}})


def test_worker_volumes_shm_and_model_cache() -> None:
    (group,) = _groups(chart.render_example("gke-h100")).values()
    spec = group["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Gi"}
    claim = volumes["model-cache"]["ephemeral"]["volumeClaimTemplate"]["spec"]
    assert claim["storageClassName"] == "premium-rwo"
    assert claim["resources"]["requests"]["storage"] == "300Gi"
    mounts = {m["name"]: m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
    assert mounts == {"dshm": "/dev/shm", "model-cache": "/home/ray/.cache/huggingface"}
    env = chart.env_of(spec["containers"][0])
    assert env["HF_HOME"]["value"] == "/home/ray/.cache/huggingface"


@pytest.mark.parametrize(
    ("cache", "expected"),
    [
        (
            {"type": "pvc", "existingClaim": "weights"},
            {"persistentVolumeClaim": {"claimName": "weights"}},
        ),
        ({"type": "emptyDir", "size": "50Gi"}, {"emptyDir": {"sizeLimit": "50Gi"}}),
    ],
)
def test_model_cache_options(cache: dict[str, Any], expected: dict[str, Any]) -> None:
    group = _groups(chart.render({"serving": {"modelCache": cache}}))["l4"]
    volume = next(v for v in group["template"]["spec"]["volumes"] if v["name"] == "model-cache")
    assert {k: v for k, v in volume.items() if k != "name"} == expected


def test_pvc_cache_needs_a_claim() -> None:
    with pytest.raises(helm_python.HelmRenderError, match="existingClaim"):
        chart.render({"serving": {"modelCache": {"type": "pvc"}}})


def test_hf_token_from_an_existing_secret_on_every_ray_container() -> None:
    rendered = chart.render({"serving": {"huggingface": {"tokenSecret": {"name": "hf"}}}})
    ray = [t for origin, t in chart.pod_templates(rendered) if origin.startswith("RayService")]
    assert len(ray) == 2
    for template in ray:
        env = chart.env_of(template["spec"]["containers"][0])
        assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "hf", "key": "hf-token"}
    plain = chart.render()
    for origin, template in chart.pod_templates(plain):
        assert "HF_TOKEN" not in chart.env_of(template["spec"]["containers"][0]), origin


def test_head_runs_no_engines_and_exposes_the_serve_port() -> None:
    head = _cluster(chart.render())["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    container = head["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert (ports["serve"], ports["dashboard"], ports["metrics"]) == (8000, 8265, 8080)
    assert "nvidia.com/gpu" not in container["resources"]["limits"]


def test_rayservice_upgrade_strategy_and_version() -> None:
    rayservice = chart.render().one("RayService")
    assert rayservice["spec"]["upgradeStrategy"] == {"type": "NewCluster"}
    assert rayservice["spec"]["rayClusterConfig"]["rayVersion"] == "2.60.0"


def test_without_the_autoscaler_the_head_uses_the_chart_service_account() -> None:
    rendered = chart.render({"serving": {"autoscaler": {"enabled": False}}})
    cluster = _cluster(rendered)
    assert cluster["enableInTreeAutoscaling"] is False
    assert "autoscalerOptions" not in cluster
    head = cluster["headGroupSpec"]["template"]["spec"]
    account = rendered.one("ServiceAccount", "-ray")["metadata"]["name"]
    assert head["serviceAccountName"] == account
    assert head["automountServiceAccountToken"] is False
