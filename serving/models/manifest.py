"""Checksum manifests for prepared model directories.

A directory is complete when its manifest exists and every file it lists has the recorded
size and sha256. The manifest is written last, so an interrupted preparation never passes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

MANIFEST_NAME = "gemma-serving-manifest.json"
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Manifest:
    """What a prepared directory must contain, and where it came from."""

    recipe: str
    source_sha256: str
    files: dict[str, str]

    def write(self, directory: Path) -> None:
        payload = {"recipe": self.recipe, "source_sha256": self.source_sha256, "files": self.files}
        tmp = directory / (MANIFEST_NAME + ".tmp")
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
        tmp.replace(directory / MANIFEST_NAME)

    @classmethod
    def read(cls, directory: Path) -> Manifest | None:
        path = directory / MANIFEST_NAME
        if not path.is_file():
            return None
        payload = json.loads(path.read_text())
        return cls(payload["recipe"], payload["source_sha256"], dict(payload["files"]))

    @classmethod
    def of_directory(cls, directory: Path, *, recipe: str, source_sha256: str) -> Manifest:
        files = {
            str(path.relative_to(directory)): sha256_file(path)
            for path in sorted(directory.rglob("*"))
            if path.is_file() and not path.name.startswith(MANIFEST_NAME)
        }
        return cls(recipe, source_sha256, files)


class ChecksumMismatch(RuntimeError):
    """A prepared directory does not match its manifest."""


def verify(directory: Path, *, recipe: str, source_sha256: str) -> bool:
    """True when ``directory`` holds a complete preparation of this recipe and source.

    Returns False when there is nothing (or an older recipe) to verify; raises
    ``ChecksumMismatch`` when files are missing or altered.
    """
    manifest = Manifest.read(directory)
    if manifest is None or manifest.recipe != recipe or manifest.source_sha256 != source_sha256:
        return False
    for name, expected in manifest.files.items():
        path = directory / name
        if not path.is_file():
            raise ChecksumMismatch(f"{path} is missing")
        if sha256_file(path) != expected:
            raise ChecksumMismatch(f"{path} does not match its recorded sha256")
    return True
