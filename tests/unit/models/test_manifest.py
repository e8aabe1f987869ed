from __future__ import annotations

from pathlib import Path

import pytest

from serving.models.manifest import ChecksumMismatch, Manifest, verify

RECIPE = "test/v1"


def _prepared(tmp_path: Path) -> Path:
    directory = tmp_path / "model"
    (directory / "sub").mkdir(parents=True)
    (directory / "weights.bin").write_bytes(b"\x00\x01" * 100)
    (directory / "sub" / "config.json").write_text("{}")
    Manifest.of_directory(directory, recipe=RECIPE, source_sha256="abc").write(directory)
    return directory


def test_complete_directory_verifies(tmp_path: Path) -> None:
    directory = _prepared(tmp_path)
    assert verify(directory, recipe=RECIPE, source_sha256="abc")
    manifest = Manifest.read(directory)
    assert manifest is not None
    assert set(manifest.files) == {"weights.bin", "sub/config.json"}


def test_missing_manifest_or_other_recipe_means_not_prepared(tmp_path: Path) -> None:
    assert not verify(tmp_path, recipe=RECIPE, source_sha256="abc")
    directory = _prepared(tmp_path)
    assert not verify(directory, recipe="test/v2", source_sha256="abc")
    assert not verify(directory, recipe=RECIPE, source_sha256="other-source")


def test_altered_file_is_refused(tmp_path: Path) -> None:
    directory = _prepared(tmp_path)
    (directory / "weights.bin").write_bytes(b"\x00\x02" * 100)
    with pytest.raises(ChecksumMismatch, match=r"weights\.bin"):
        verify(directory, recipe=RECIPE, source_sha256="abc")


def test_missing_file_is_refused(tmp_path: Path) -> None:
    directory = _prepared(tmp_path)
    (directory / "sub" / "config.json").unlink()
    with pytest.raises(ChecksumMismatch, match="missing"):
        verify(directory, recipe=RECIPE, source_sha256="abc")
