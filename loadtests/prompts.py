"""The shipped prompt set: one JSON object per line with ``id``, ``category`` and ``prompt``."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Prompt:
    id: str
    category: str
    text: str


def load_prompts(path: Path) -> list[Prompt]:
    prompts = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        data = json.loads(line)
        if not data.get("prompt"):
            raise ValueError(f"{path}:{number}: no prompt")
        prompts.append(Prompt(str(data["id"]), str(data.get("category", "")), data["prompt"]))
    if not prompts:
        raise ValueError(f"{path} holds no prompt")
    return prompts


class PromptPicker:
    """Random prompts from the set (each user gets its own, seeded by its index)."""

    def __init__(self, prompts: list[Prompt], seed: int | None = None) -> None:
        self._prompts = prompts
        self._rng = random.Random(seed)

    def pick(self) -> Prompt:
        return self._rng.choice(self._prompts)
