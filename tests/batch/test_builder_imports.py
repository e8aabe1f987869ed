"""The driver's early imports for Ray Data LLM's vLLM processor builder (no Ray started)."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest

from batch.builder_imports import ERRORS_MODULE, start_builder_imports, vllm_hidden

ROOT = Path(__file__).resolve().parents[2]


def test_the_builders_modules_load_without_vllm_and_leave_no_trace_of_hiding_it() -> None:
    code = (
        "import importlib.util, sys\n"
        "from batch.builder_imports import ERRORS_MODULE, start_builder_imports\n"
        "start_builder_imports().result()\n"
        "stage = sys.modules['ray.llm._internal.batch.stages.vllm_engine_stage']\n"
        "assert stage.vLLMEngineStageUDF.__module__ == stage.__name__\n"
        "assert 'torch' in sys.modules and 'transformers' in sys.modules\n"
        "assert 'vllm' not in sys.modules, 'vLLM was imported, or is still hidden'\n"
        "assert importlib.util.find_spec('vllm') is not None\n"
        "assert ERRORS_MODULE not in sys.modules\n"
        "assert not hasattr(sys.modules['ray.llm._internal.common'], 'errors')\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"


def test_a_process_that_has_vllm_keeps_it_and_its_error_module(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loaded = types.ModuleType("vllm")
    errors = types.ModuleType(ERRORS_MODULE)
    monkeypatch.setitem(sys.modules, "vllm", loaded)
    monkeypatch.setitem(sys.modules, ERRORS_MODULE, errors)
    with vllm_hidden():
        assert sys.modules["vllm"] is loaded
    assert sys.modules["vllm"] is loaded
    assert sys.modules[ERRORS_MODULE] is errors


def test_a_failed_import_reaches_the_caller_and_vllm_is_importable_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, "vllm", raising=False)
    with pytest.raises(ModuleNotFoundError, match="no_such_module_here"):
        start_builder_imports(["no_such_module_here"]).result()
    assert "vllm" not in sys.modules


def test_inside_the_hiding_vllm_cannot_be_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "vllm", raising=False)
    with vllm_hidden(), pytest.raises(ImportError):
        import vllm  # noqa: F401
    assert "vllm" not in sys.modules
