"""The chart lints, renders and validates for the defaults, every example and every scenario."""

from __future__ import annotations

import copy
from typing import Any

import helm_python
import jsonschema
import pytest

from tests.helm import chart, schemas
from tests.helm.scenarios import SCENARIOS

CASES: dict[str, dict[str, Any]] = {
    "default": {},
    **{f"example-{name}": chart.example_values(name) for name in chart.example_names()},
    **SCENARIOS,
}


def test_every_profile_example_exists() -> None:
    assert {"gke-l4", "gke-h100"} <= set(chart.example_names())


@pytest.mark.parametrize("case", sorted(CASES))
def test_lint_is_clean(case: str) -> None:
    report = helm_python.lint(chart.CHART, CASES[case], strict=True, kube_version="v1.30.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [], report
    assert problems == [], report


# The defaults and examples against every supported version; scenarios against the oldest.
VALIDATIONS = [
    (case, version)
    for case in sorted(CASES)
    for version in (schemas.KUBE_VERSIONS if case not in SCENARIOS else schemas.KUBE_VERSIONS[:1])
]


@pytest.mark.parametrize(("case", "version"), VALIDATIONS)
def test_every_object_validates(case: str, version: str) -> None:
    rendered = chart.render(CASES[case])
    assert rendered.objects
    for obj in rendered.objects:
        schemas.validate(obj, version)


def test_everything_on_renders_every_kind() -> None:
    kinds = chart.render(SCENARIOS["everything-on"]).kinds()
    assert kinds == {
        "ServiceAccount",
        "Service",
        "Deployment",
        "PersistentVolumeClaim",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "StatefulSet",
        "RayService",
        "NetworkPolicy",
        "ServiceMonitor",
        "PodMonitor",
        "PrometheusRule",
        "ConfigMap",
    }


def test_monitoring_objects_are_off_by_default() -> None:
    """Not every cluster has the Prometheus operator's CRDs."""
    kinds = chart.render().kinds()
    assert not kinds & {"ServiceMonitor", "PodMonitor", "PrometheusRule"}


def test_names_fit_kubernetes_limits_with_a_long_release_name() -> None:
    files = chart._chart().render(
        values={"nameOverride": "x" * 70}, name="r" * 53, namespace=chart.NAMESPACE
    )
    rayservice = next(v for k, v in files.items() if k.endswith("rayservice.yaml"))
    name_line = next(line for line in rayservice.splitlines() if line.startswith("  name: "))
    assert len(name_line.removeprefix("  name: ")) <= 40


# The validators are only worth something if they reject broken objects.


def _worker_container(rayservice: dict[str, Any]) -> dict[str, Any]:
    group = rayservice["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    container: dict[str, Any] = group["template"]["spec"]["containers"][0]
    return container


@pytest.mark.parametrize(
    ("breakage", "where"),
    [
        (lambda rs: _worker_container(rs).update(resources="lots"), "resources"),
        (lambda rs: rs["spec"]["rayClusterConfig"].update(workerGroupSpec=[]), "workerGroupSpec"),
        (lambda rs: rs["spec"]["rayClusterConfig"]["headGroupSpec"].pop("template"), "template"),
        (lambda rs: rs["spec"].update(upgradeStrategy={"type": "Rolling"}), "Rolling"),
        (lambda rs: _worker_container(rs).update(imagePullPolicy=3), "3"),
    ],
)
def test_rayservice_schema_rejects_broken_objects(breakage: Any, where: str) -> None:
    rayservice = copy.deepcopy(chart.render().one("RayService"))
    breakage(rayservice)
    with pytest.raises(jsonschema.ValidationError, match=where):
        schemas.validate(rayservice, schemas.KUBE_VERSIONS[0])


def test_builtin_schema_rejects_broken_objects() -> None:
    deployment = copy.deepcopy(chart.render().one("Deployment", "-gateway"))
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(jsonschema.ValidationError):
        schemas.validate(deployment, schemas.KUBE_VERSIONS[0])


def test_values_schema_rejects_unknown_keys_and_wrong_types() -> None:
    with pytest.raises(helm_python.HelmValuesError, match="prot"):
        chart.render({"gateway": {"prot": 8080}})
    with pytest.raises(helm_python.HelmValuesError, match="accelerator"):
        chart.render({"serving": {"workerGroups": {"l4": {"accelerator": "V100"}}}})
