"""The traffic mix: which capability each request exercises, by weight."""

from __future__ import annotations

import random
from collections.abc import Mapping

CAPABILITIES = ("chat", "stream", "tools", "image", "audio")
STREAMING = frozenset({"stream", "tools", "image", "audio"})


def parse_mix(text: str) -> dict[str, float]:
    """``"stream=4,chat=1"`` -> ``{"stream": 4.0, "chat": 1.0}``; zero weights are dropped."""
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, weight = part.partition("=")
        name = name.strip()
        if name not in CAPABILITIES:
            raise ValueError(f"unknown capability {name!r}; choose from {', '.join(CAPABILITIES)}")
        value = float(weight) if sep else 1.0
        if value < 0:
            raise ValueError(f"weight of {name} must not be negative")
        if value > 0:
            mix[name] = value
    if not mix:
        raise ValueError("the mix names no capability with a positive weight")
    return mix


class Mix:
    """Draws capabilities in proportion to their weights, after an optional ``lead``.

    The first draw is ``lead`` when the mix has it: users that start together each open
    with a different capability (``lead_for``), so even a short run sees every one.
    """

    def __init__(
        self,
        weights: Mapping[str, float],
        rng: random.Random | None = None,
        *,
        lead: str | None = None,
    ) -> None:
        self._names = list(weights)
        self._weights = [weights[n] for n in self._names]
        self._rng = rng or random.Random()
        self._lead = lead if lead in weights else None

    def draw(self) -> str:
        if self._lead is not None:
            lead, self._lead = self._lead, None
            return lead
        return self._rng.choices(self._names, weights=self._weights)[0]


def lead_for(weights: Mapping[str, float], user_number: int) -> str:
    """The capability user ``user_number`` opens with: the mix's names in turn."""
    names = list(weights)
    return names[user_number % len(names)]
