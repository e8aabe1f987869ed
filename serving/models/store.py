"""Where prepared models and test fixtures live on disk, and how catalog sources resolve.

A catalog entry names its weights with a *source*:

- ``local:NAME``   a model prepared by ``gemma-serving models prepare`` (``$HOME/models/NAME``);
- ``fixture:NAME`` a tiny random-weight test checkpoint (``$HOME/fixtures/NAME``);
- anything else    passed to vLLM unchanged (a Hugging Face id, a path, a ``gs://`` URI).

``$HOME`` is ``$GEMMA_SERVING_HOME``, by default ``~/.cache/gemma-serving``.
"""

from __future__ import annotations

import os
from pathlib import Path

LOCAL_SCHEME = "local:"
FIXTURE_SCHEME = "fixture:"


def gemma_home() -> Path:
    """The cache folder for prepared models and fixtures."""
    configured = os.environ.get("GEMMA_SERVING_HOME")
    if configured:
        return Path(configured).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "gemma-serving"


def resolve_source(source: str, home: Path | None = None) -> str:
    """Turn a catalog source into what vLLM loads (a directory path or a hub id)."""
    root = home if home is not None else gemma_home()
    if source.startswith(LOCAL_SCHEME):
        return str(root / "models" / source.removeprefix(LOCAL_SCHEME))
    if source.startswith(FIXTURE_SCHEME):
        return str(root / "fixtures" / source.removeprefix(FIXTURE_SCHEME))
    return source


def is_local_source(source: str) -> bool:
    return source.startswith((LOCAL_SCHEME, FIXTURE_SCHEME))
