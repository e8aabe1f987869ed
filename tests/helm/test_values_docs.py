"""values.yaml documents every key with a `# --` comment; values.schema.json covers them all."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from tests.helm import chart

VALUES = chart.CHART / "values.yaml"
SCHEMA = json.loads((chart.CHART / "values.schema.json").read_text())
# Maps whose entries are data handed to Kubernetes or Ray, not chart options.
FREE_FORM = {"resources", "rayStartParams"}
KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+):")


def _documented_keys() -> list[tuple[str, bool]]:
    """(dotted key path, has a `# --` comment) for every chart option in values.yaml."""
    results: list[tuple[str, bool]] = []
    path: list[tuple[int, str]] = []
    comment_block: list[str] = []
    for line in VALUES.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comment_block.append(stripped)
            continue
        match = KEY.match(line)
        if not match:
            comment_block = [] if not stripped else comment_block
            continue
        indent, key = len(match["indent"]), match["key"]
        path = [(i, k) for i, k in path if i < indent]
        inside_free_form = any(k in FREE_FORM for _, k in path)
        path.append((indent, key))
        if not inside_free_form:
            documented = any(c.startswith("# --") for c in comment_block)
            results.append((".".join(k for _, k in path), documented))
        comment_block = []
    return results


def test_every_key_has_a_doc_comment() -> None:
    keys = _documented_keys()
    assert len(keys) > 100
    undocumented = [k for k, documented in keys if not documented]
    assert undocumented == []


def _schema_paths(node: dict[str, Any], prefix: str = "") -> set[str]:
    paths: set[str] = set()
    for key, sub in node.get("properties", {}).items():
        path = f"{prefix}{key}"
        paths.add(path)
        if key not in FREE_FORM:
            paths |= _schema_paths(sub, f"{path}.")
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and "properties" in extra:
        paths |= {f"{prefix}*.{p}" for p in _schema_paths(extra)}
    return paths


def _value_paths(node: Any, prefix: str = "", under_groups: bool = False) -> set[str]:
    paths: set[str] = set()
    if not isinstance(node, dict):
        return paths
    for key, value in node.items():
        shown = "*" if under_groups else key
        path = f"{prefix}{shown}"
        if not under_groups:
            paths.add(path)
        if key not in FREE_FORM:
            paths |= _value_paths(value, f"{path}.", under_groups=key == "workerGroups")
    return paths


def test_schema_and_values_describe_the_same_options() -> None:
    defaults = yaml.safe_load(VALUES.read_text())
    in_values = _value_paths(defaults)
    in_schema = _schema_paths(SCHEMA) - {"global"}
    free_maps = {"commonLabels", "annotations", "podAnnotations", "podLabels", "nodeSelector"}
    in_values = {p for p in in_values if not set(p.split(".")[:-1]) & free_maps}
    assert in_values == in_schema


def test_schema_is_strict_about_unknown_keys() -> None:
    def walk(node: dict[str, Any], where: str) -> None:
        if "properties" in node:
            assert node.get("additionalProperties") is False, where
            for key, sub in node["properties"].items():
                if key not in FREE_FORM:
                    walk(sub, f"{where}.{key}")

    walk(SCHEMA, "values")


def test_no_secret_values_in_values_files() -> None:
    """Secrets are referenced by Secret name; no key looks like it holds one."""
    for path in [VALUES, *chart.EXAMPLES.glob("*.yaml")]:
        text = path.read_text()
        assert not re.search(r"(?im)^\s*(password|token|apiKey|admin_key)\s*:\s*\S", text), path
