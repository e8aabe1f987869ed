"""The chart's alert rules under ``promtool test rules``: each alert fires, and stays silent.

The rules are rendered through the real Helm engine (release namespace ``llm``, default
thresholds), written as a plain rule file beside a copy of
``promtool/alert_rules_test.yaml``, checked with ``promtool check rules`` and run with
``promtool test rules``. ``make install`` brings promtool (Debian's ``prometheus``).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.helm import chart
from tests.helm.scenarios import EVERYTHING_ON

TESTS = Path(__file__).parent / "promtool" / "alert_rules_test.yaml"
PROMTOOL = shutil.which("promtool")


def _groups() -> list[dict]:
    groups: list[dict] = chart.render(EVERYTHING_ON).one("PrometheusRule")["spec"]["groups"]
    return groups


def _promtool(*args: str, cwd: Path) -> str:
    assert PROMTOOL is not None, "promtool is missing: `make install` brings it"
    done = subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_every_alert_has_a_firing_and_a_silent_case() -> None:
    alerts = {r["alert"] for g in _groups() for r in g["rules"] if "alert" in r}
    cases = [c for t in yaml.safe_load(TESTS.read_text())["tests"] for c in t["alert_rule_test"]]
    firing = {c["alertname"] for c in cases if c["exp_alerts"]}
    silent = {c["alertname"] for c in cases if not c["exp_alerts"]}
    assert alerts, "the chart renders no alert"
    assert alerts - firing == set(), "alerts never tested firing"
    assert alerts - silent == set(), "alerts never tested silent"
    assert (firing | silent) - alerts == set(), "tests of alerts the chart does not have"


def test_the_alert_rules_pass_promtool(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": _groups()}))
    shutil.copy(TESTS, tmp_path / TESTS.name)
    assert "SUCCESS" in _promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert "SUCCESS" in _promtool("test", "rules", TESTS.name, cwd=tmp_path)
