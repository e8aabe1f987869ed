"""No privileged containers, non-root everywhere, and a clean checkov scan.

checkov scans the rendered manifests plus each RayService pod template written out as a
Pod (checkov does not look inside custom resources). Findings the chart accepts carry a
``checkov.io/skipN: CHECK=reason`` annotation from ``_helpers.tpl``; anything else fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helm import chart
from tests.helm.scenarios import EVERYTHING_ON

SCANNED = {
    "default": {},
    **{name: chart.example_values(name) for name in chart.example_names()},
    "everything-on": chart.deep_merge(chart.example_values("gke-l4"), EVERYTHING_ON),
}
# The accepted findings, per object; a new one must be justified in _helpers.tpl and here.
ACCEPTED = {
    "Deployment": {"CKV_K8S_43", "CKV_K8S_15", "CKV_K8S_35"},
    "StatefulSet": {"CKV_K8S_43", "CKV_K8S_15", "CKV_K8S_35"},
    "ray-head": {
        *("CKV_K8S_43", "CKV_K8S_15", "CKV_K8S_35", "CKV_K8S_40"),
        *("CKV_K8S_22", "CKV_K8S_8", "CKV_K8S_9", "CKV_K8S_38"),
    },
    "ray-worker": {
        *("CKV_K8S_43", "CKV_K8S_15", "CKV_K8S_35", "CKV_K8S_40"),
        *("CKV_K8S_22", "CKV_K8S_8", "CKV_K8S_9"),
    },
}


def _checkov() -> str | None:
    candidates = [
        os.environ.get("CHECKOV", ""),
        str(chart.REPO / ".venv-checkov" / "bin" / "checkov"),
        shutil.which("checkov") or "",
    ]
    return next((c for c in candidates if c and Path(c).is_file()), None)


@pytest.mark.parametrize("case", sorted(SCANNED))
def test_no_privileged_or_root_containers(case: str) -> None:
    rendered = chart.render(SCANNED[case])
    templates = list(chart.pod_templates(rendered))
    assert len(templates) >= 3
    for origin, template in templates:
        pod = template["spec"].get("securityContext", {})
        assert pod.get("runAsNonRoot") is True, origin
        assert pod.get("runAsUser", 0) > 0, origin
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", origin
        assert template["spec"].get("hostNetwork") is not True, origin
        for container in chart.containers(template):
            security = container["securityContext"]
            assert security["privileged"] is False, origin
            assert security["allowPrivilegeEscalation"] is False, origin
            assert security["capabilities"]["drop"] == ["ALL"], origin
            assert "add" not in security["capabilities"], origin
    autoscaler = rendered.one("RayService")["spec"]["rayClusterConfig"]["autoscalerOptions"]
    assert autoscaler["securityContext"]["runAsNonRoot"] is True


def test_gateway_and_redis_have_read_only_root_filesystems() -> None:
    rendered = chart.render()
    for kind in ("Deployment", "StatefulSet"):
        container = rendered.one(kind)["spec"]["template"]["spec"]["containers"][0]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True


def _skips(metadata: dict[str, Any]) -> dict[str, str]:
    annotations = metadata.get("annotations", {})
    pairs = [v.partition("=") for k, v in annotations.items() if k.startswith("checkov.io/skip")]
    return {check: reason for check, _, reason in pairs}


def test_every_accepted_finding_is_listed_with_its_reason() -> None:
    rendered = chart.render(SCANNED["everything-on"])
    found = {
        "Deployment": _skips(rendered.one("Deployment")["metadata"]),
        "StatefulSet": _skips(rendered.one("StatefulSet")["metadata"]),
    }
    for origin, template in chart.pod_templates(rendered):
        if origin.startswith("RayService/"):
            role = "ray-head" if origin.endswith("/head") else "ray-worker"
            found[role] = _skips(template["metadata"])
    assert {role: set(skips) for role, skips in found.items()} == ACCEPTED
    for skips in found.values():
        for check, reason in skips.items():
            assert len(reason) > 30, check
    others = [o for o in rendered.objects if o["kind"] not in {"Deployment", "StatefulSet"}]
    assert not [o["metadata"]["name"] for o in others if _skips(o["metadata"])]


def _write_scan_tree(root: Path) -> None:
    for case, values in SCANNED.items():
        folder = root / case
        folder.mkdir()
        rendered = chart.render(values)
        for index, obj in enumerate(rendered.objects):
            name = f"{index:02d}-{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"
            (folder / name).write_text(yaml.safe_dump(obj))
        for origin, template in chart.pod_templates(rendered):
            if origin.startswith("RayService/"):
                name = origin.replace("/", "-").lower()
                metadata = {**template["metadata"], "name": name, "namespace": chart.NAMESPACE}
                pod = {"apiVersion": "v1", "kind": "Pod", "metadata": metadata}
                pod["spec"] = template["spec"]
                (folder / f"pod-{name}.yaml").write_text(yaml.safe_dump(pod))


@pytest.fixture(scope="module")
def checkov_reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """One checkov run (its start-up alone takes tens of seconds) over the rendered
    manifests and the Dockerfiles; the reports keyed by framework."""
    checkov = _checkov()
    if checkov is None:
        pytest.skip(
            "checkov is not installed: `make checkov` builds .venv-checkov (its pins clash "
            "with the project venv), or set CHECKOV=/path/to/checkov"
        )
    root = tmp_path_factory.mktemp("manifests")
    _write_scan_tree(root)
    command = [checkov, "-d", str(root), "-d", str(chart.REPO / "docker")]
    command += ["--framework", "kubernetes", "dockerfile", "--skip-download"]
    command += ["--quiet", "-o", "json"]  # --quiet: failed checks only, with full counts
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    return {r["check_type"]: r for r in _json_documents(result.stdout)}


def _json_documents(text: str) -> list[dict[str, Any]]:
    """checkov prints one JSON document per framework (objects or lists), back to back."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while text[at:].strip():
        at += len(text[at:]) - len(text[at:].lstrip())
        document, at = decoder.raw_decode(text, at)
        found.extend(document if isinstance(document, list) else [document])
    return found


def _annotated_skips() -> int:
    """checkov.io/skip annotations on everything the scan reads (one skipped check each)."""
    count = 0
    for values in SCANNED.values():
        rendered = chart.render(values)
        metadata = [o["metadata"] for o in rendered.objects if o["kind"] != "RayService"]
        metadata += [t["metadata"] for o, t in chart.pod_templates(rendered) if "Ray" in o]
        count += sum(
            k.startswith("checkov.io/skip") for m in metadata for k in m.get("annotations", {})
        )
    return count


def _failed(report: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]


def test_checkov_passes_on_the_rendered_manifests(
    checkov_reports: dict[str, dict[str, Any]],
) -> None:
    report = checkov_reports["kubernetes"]
    summary = report["summary"]
    assert summary["parsing_errors"] == 0
    assert _failed(report) == []
    assert summary["passed"] > 100
    # Every accepted finding was read by checkov, and there are no others.
    assert summary["skipped"] == _annotated_skips()


def test_checkov_passes_on_the_dockerfiles(checkov_reports: dict[str, dict[str, Any]]) -> None:
    report = checkov_reports["dockerfile"]
    assert _failed(report) == []
    assert report["summary"]["passed"] > 20
    # The one accepted finding: ray-worker.Dockerfile has no HEALTHCHECK (see its comment).
    assert report["summary"]["skipped"] == 1
