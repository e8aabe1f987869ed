"""``gemma-serving models``: a second ``prepare`` verifies checksums instead of rebuilding."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from serving.models.prepare import ensure_cpu_dev_models, preparable

pytestmark = pytest.mark.integration


def _cli(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "gemma_serving", *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return result.stdout


def test_second_prepare_verifies() -> None:
    ensure_cpu_dev_models()
    out = _cli("models", "prepare", "--all")
    for name in preparable():
        assert f"{name}: verified at " in out


def test_list_reports_prepared() -> None:
    ensure_cpu_dev_models()
    rows = json.loads(_cli("models", "list", "--json"))
    assert {row["name"]: row["state"] for row in rows} == dict.fromkeys(preparable(), "prepared")
