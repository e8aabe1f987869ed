"""A LiteLLM proxy for benchmarks: installed into a venv of its own, started pinned and ready.

LiteLLM is never a dependency of this project. The first run that asks for it creates
``~/.cache/gemma-serving/bench/litellm-<version>/`` with uv and installs
``litellm[proxy]==<version>`` there; later runs reuse it. The proxy serves one model
(``gemma-3-270m``, as ``openai/gemma-3-270m`` at the upstream's ``/v1``) from a generated
config.yaml: one worker, no database, a master key as the bearer, logging at ERROR and the
bundled model cost map (no fetch at start).

    with litellm_proxy(ensure_venv(VERSION), upstream, port, core=0) as process: ...
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from benchmarks.processes import python_process

VERSION = "1.108.7"
CACHE = Path.home() / ".cache" / "gemma-serving" / "bench"
MODEL = "gemma-3-270m"
MASTER_KEY = "sk-gemma-bench"
ENV = {
    "LITELLM_LOG": "ERROR",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_DONT_SHOW_FEEDBACK_BOX": "true",
}

# Started by python_process under this interpreter, which replaces itself with the proxy:
# the pid (whose CPU is measured) and the core it was pinned to stay the proxy's.
_EXEC = "import os, sys; os.execv(sys.argv[1], sys.argv[1:])"


def _uv() -> str:
    """uv from PATH, else the one installed beside this interpreter."""
    return shutil.which("uv") or str(Path(sys.executable).with_name("uv"))


def ensure_venv(version: str = VERSION) -> Path:
    """The venv holding ``litellm[proxy]==version``, created and installed on first use."""
    venv = CACHE / f"litellm-{version}"
    marker = venv / ".installed"
    if marker.exists():
        return venv
    print(f"installing litellm[proxy]=={version} into {venv} (once)", flush=True)
    started = time.monotonic()
    python = venv / "bin" / "python"
    subprocess.run([_uv(), "venv", "-q", "--clear", "--python", sys.executable, venv], check=True)
    subprocess.run(
        [_uv(), "pip", "install", "-q", "--python", python, f"litellm[proxy]=={version}"],
        check=True,
    )
    marker.touch()
    print(f"installed in {time.monotonic() - started:.0f} s", flush=True)
    return venv


def write_config(directory: Path, upstream: str) -> Path:
    """config.yaml for one model at ``upstream``'s ``/v1``, with no database."""
    config = {
        "model_list": [
            {
                "model_name": MODEL,
                "litellm_params": {
                    "model": f"openai/{MODEL}",
                    "api_base": upstream + "/v1",
                    "api_key": "dummy",
                },
            }
        ],
        "litellm_settings": {"set_verbose": False},
        "general_settings": {"master_key": MASTER_KEY},
    }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@contextmanager
def litellm_proxy(
    venv: Path, upstream: str, port: int, *, core: int
) -> Iterator[subprocess.Popen[bytes]]:
    """The proxy in front of ``upstream`` on ``port``, pinned to ``core``, ready to answer."""
    with tempfile.TemporaryDirectory(prefix="litellm-bench-") as tmp:
        config = write_config(Path(tmp), upstream)
        program = str(venv / "bin" / "litellm")
        args = ["-c", _EXEC, program, "--config", str(config), "--host", "127.0.0.1"]
        args += ["--port", str(port), "--num_workers", "1"]
        ready = f"http://127.0.0.1:{port}/health/liveliness"
        with python_process(args, cores={core}, ready_url=ready, env=ENV) as process:
            yield process
