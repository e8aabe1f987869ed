"""Everything ``gemma-serving models`` can prepare, by name (the model and the test fixtures)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from serving.models.embedded import EMBEDDED_NAME, PreparedModel, prepare_embedded_model
from serving.models.fixtures import FIXTURES, prepare_fixture
from serving.models.manifest import Manifest
from serving.models.store import gemma_home


def preparable() -> tuple[str, ...]:
    return (EMBEDDED_NAME, *FIXTURES)


def prepare(name: str, home: Path | None = None, *, force: bool = False) -> PreparedModel:
    if name == EMBEDDED_NAME:
        return prepare_embedded_model(home, force=force)
    return prepare_fixture(name, home, force=force)


def prepare_many(
    names: list[str], home: Path | None = None, *, force: bool = False
) -> Iterator[PreparedModel]:
    unknown = [name for name in names if name not in preparable()]
    if unknown:
        raise KeyError(f"unknown: {', '.join(unknown)}; known: {', '.join(preparable())}")
    for name in names:
        yield prepare(name, home, force=force)


def ensure_cpu_dev_models(home: Path | None = None) -> list[PreparedModel]:
    """Everything the CPU profiles serve: the 270M and the test fixtures."""
    return list(prepare_many(list(preparable()), home))


def status(home: Path | None = None) -> list[dict[str, Any]]:
    root = home if home is not None else gemma_home()
    rows = []
    for name in preparable():
        kind = "model" if name == EMBEDDED_NAME else "fixture"
        path = root / ("models" if kind == "model" else "fixtures") / name
        state = "prepared" if Manifest.read(path) is not None else "missing"
        rows.append({"name": name, "kind": kind, "state": state, "path": str(path)})
    return rows
