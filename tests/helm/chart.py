"""Render the gemma-serving chart with the real Helm engine and look objects up.

``render()`` goes through ``helm_python`` (Helm's Go SDK in a shared library), so the
templates, ``values.schema.json`` checks and ``fail`` guards run exactly as in
``helm install``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import helm_python
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "gemma-serving"
EXAMPLES = CHART / "examples"
SERVE_CONFIGS = CHART / "serve-configs"
RELEASE = "gemma"
NAMESPACE = "llm"

Obj = dict[str, Any]


def example_names() -> list[str]:
    return sorted(p.stem for p in EXAMPLES.glob("*.yaml"))


def example_values(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    return data


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Merge like Helm merges ``-f`` files: maps recursively, everything else replaced."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@dataclass(frozen=True)
class Rendered:
    """The objects one render produced, keyed for lookup."""

    objects: tuple[Obj, ...]
    files: dict[str, str]

    def kinds(self) -> set[str]:
        return {o["kind"] for o in self.objects}

    def all(self, kind: str) -> list[Obj]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str, name_suffix: str = "") -> Obj:
        found = [o for o in self.all(kind) if o["metadata"]["name"].endswith(name_suffix)]
        assert len(found) == 1, f"expected one {kind} named *{name_suffix}, got {len(found)}"
        return found[0]

    def has(self, kind: str) -> bool:
        return any(o["kind"] == kind for o in self.objects)


@cache
def _chart() -> helm_python.Chart:
    return helm_python.Chart.load(CHART)


def render(values: dict[str, Any] | None = None) -> Rendered:
    """Render the chart as release ``gemma`` in namespace ``llm``."""
    files = _chart().render(values=values or {}, name=RELEASE, namespace=NAMESPACE)
    objects: list[Obj] = []
    for path in sorted(files):
        if not path.endswith((".yaml", ".yml")):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(files[path]) if doc)
    return Rendered(objects=tuple(objects), files=files)


def render_example(name: str, extra: dict[str, Any] | None = None) -> Rendered:
    return render(deep_merge(example_values(name), extra or {}))


def pod_templates(rendered: Rendered) -> Iterator[tuple[str, Obj]]:
    """Every pod template with a readable origin: workloads and the RayService groups."""
    for obj in rendered.objects:
        kind, name = obj["kind"], obj["metadata"]["name"]
        if kind in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
            yield f"{kind}/{name}", obj["spec"]["template"]
        elif kind == "RayService":
            cluster = obj["spec"]["rayClusterConfig"]
            yield f"{kind}/{name}/head", cluster["headGroupSpec"]["template"]
            for group in cluster.get("workerGroupSpecs", []):
                yield f"{kind}/{name}/{group['groupName']}", group["template"]


def containers(template: Obj) -> list[Obj]:
    spec = template["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def env_of(container: Obj) -> dict[str, Obj]:
    return {e["name"]: e for e in container.get("env", [])}


def selector_matches(selector: Obj, labels: dict[str, str]) -> bool:
    """Kubernetes LabelSelector semantics (matchLabels AND matchExpressions)."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True
