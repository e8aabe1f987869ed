"""Validate rendered objects: built-in kinds with kubernetes-validate, CRDs with jsonschema.

The CRD schemas in ``schemas/`` are trimmed copies of the operators' API types (see
each file's description); their pod templates, services and resource lists point at
the Kubernetes definitions kubernetes-validate ships, so a RayService's pod templates
are checked as strictly as a Deployment's.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
from referencing import Registry, Resource

SCHEMAS = Path(__file__).parent / "schemas"
K8S_DEFINITIONS = "https://kubernetes.io/api/_definitions.json"
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and a current GKE one.
KUBE_VERSIONS = ("1.30.0", "1.33.0")
CRD_SCHEMAS = {
    ("ray.io/v1", "RayService"): "rayservice-ray.io-v1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-monitoring.coreos.com-v1.json",
    ("monitoring.coreos.com/v1", "PodMonitor"): "podmonitor-monitoring.coreos.com-v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule-monitoring.coreos.com-v1.json",
}


@cache
def _k8s_definitions(version: str) -> Resource[Any]:
    package = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    path = package / f"v{version}-local-strict" / "_definitions.json"
    return Resource.from_contents(json.loads(path.read_text()))


@cache
def _crd_validator(filename: str, version: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / filename).read_text())
    registry: Registry[Any] = Registry().with_resource(K8S_DEFINITIONS, _k8s_definitions(version))
    return jsonschema.Draft202012Validator(schema, registry=registry)


def validate(obj: dict[str, Any], version: str) -> None:
    """Raise ``jsonschema.ValidationError`` (or a subclass) if ``obj`` is invalid."""
    key = (obj["apiVersion"], obj["kind"])
    if key in CRD_SCHEMAS:
        _crd_validator(CRD_SCHEMAS[key], version).validate(obj)
    else:
        kubernetes_validate.validate(obj, version, strict=True)
