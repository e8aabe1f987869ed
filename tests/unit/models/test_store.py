from __future__ import annotations

from pathlib import Path

import pytest

from serving.models.store import gemma_home, is_local_source, resolve_source


def test_home_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GEMMA_SERVING_HOME", str(tmp_path / "gs"))
    assert gemma_home() == tmp_path / "gs"
    monkeypatch.delenv("GEMMA_SERVING_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert gemma_home() == tmp_path / "cache" / "gemma-serving"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("local:gemma-3-270m", "/h/models/gemma-3-270m"),
        ("fixture:tiny-random-gemma-3n", "/h/fixtures/tiny-random-gemma-3n"),
        ("google/gemma-3-4b-it", "google/gemma-3-4b-it"),
        ("gs://bucket/gemma", "gs://bucket/gemma"),
    ],
)
def test_sources_resolve(source: str, expected: str) -> None:
    assert resolve_source(source, Path("/h")) == expected
    assert is_local_source(source) == (source != expected)
