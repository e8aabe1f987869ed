"""What Ray Data LLM's vLLM processor builder imports in a job's driver, early and lean.

``ray.data.llm.build_processor`` imports transformers and the stage modules (torch among
them) when it is called, in the driver, before the dataset and so the engine actor can
start. One of them, Ray LLM's shared error classes (``ray.llm._internal.common.errors``),
imports vLLM only to name the exceptions the engine actor catches: on a 2-core host that
is 14 of the builder's 18.5 s, and the engine actor and the engine core it spawns each
import vLLM again.

``start_builder_imports`` runs those imports on a thread, so they overlap the driver's
``ray.init``, with vLLM hidden from them (an import of it raises ``ImportError``, which
that module catches). The driver's copy of the error module, with its empty tuples, is
dropped afterwards: anything else in the process that imports it gets vLLM's classes.
The engine actor imports all of it afresh, vLLM included. A process that already has
vLLM imported gains nothing from hiding it, and keeps it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

#: The modules ``build_vllm_engine_processor`` imports when it is called (ray pinned).
BUILDER_MODULES = (
    "transformers",
    "ray.llm._internal.batch.stages.vllm_engine_stage",
    "ray.llm._internal.batch.stages.chat_template_stage",
    "ray.llm._internal.batch.stages.prepare_multimodal_stage",
    "ray.llm._internal.batch.stages.tokenize_stage",
    "ray.llm._internal.common.utils.download_utils",
)
#: Imports vLLM only for exception classes that the engine actor, not the driver, catches.
ERRORS_MODULE = "ray.llm._internal.common.errors"


@contextmanager
def vllm_hidden() -> Iterator[None]:
    """Imports of vLLM inside raise ``ImportError``, and ``ERRORS_MODULE`` imported
    inside is dropped on the way out (unless vLLM was imported already: then nothing
    changes)."""
    if sys.modules.get("vllm") is not None:
        yield
        return
    had_errors = ERRORS_MODULE in sys.modules
    sys.modules["vllm"] = None  # type: ignore[assignment]  # the import system's "absent"
    try:
        yield
    finally:
        if sys.modules.get("vllm", ...) is None:
            del sys.modules["vllm"]
        if not had_errors:
            _drop(ERRORS_MODULE)


def _drop(name: str) -> None:
    if sys.modules.pop(name, None) is None:
        return
    parent, _, child = name.rpartition(".")
    if hasattr(sys.modules.get(parent), child):
        delattr(sys.modules[parent], child)


def import_builder_modules(modules: Sequence[str] = BUILDER_MODULES) -> None:
    with vllm_hidden():
        for name in modules:
            importlib.import_module(name)


def start_builder_imports(modules: Sequence[str] = BUILDER_MODULES) -> Future[None]:
    """``import_builder_modules`` on a thread of its own; the future re-raises its error.

    The caller waits on it before building the processor and imports nothing from vLLM
    meanwhile (``ray.init`` and building the dataset do not)."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="builder-imports")
    try:
        return pool.submit(import_builder_modules, modules)
    finally:
        pool.shutdown(wait=False)
