"""The upstream's models, polled from ``GET /v1/models``, with two health marks per model.

*Down*: the serving application's card says the engine does not answer
(``metadata.health``, ``serving.health``: its engine died, or its replicas are restarting).
Routing skips a down model, and a request waiting on a model when it goes down is
given up (``watching`` cancels its scope) rather than left queued in Serve. A failed upstream answer
(``poke``) makes the next poll run at once, so a death is seen within one poll plus the
engine's health timeout; a model is up again at the first poll that says so.

*Unhealthy*: a model that refused a connection or answered 503 is marked for
``cooldown`` seconds: routing then tries it only after every healthy candidate.

A failed poll keeps the last good list (the upstream may be restarting); the registry
is *ready* once a poll has succeeded and at least one model is up and healthy.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import aiohttp
import anyio
from opentelemetry.instrumentation.utils import suppress_http_instrumentation

from gateway.model_info import ModelInfo, model_from_card
from gateway.upstream.client import Upstream

log = logging.getLogger(__name__)


class ModelRegistry:
    """The current model list and health marks of one upstream."""

    def __init__(
        self,
        client: Upstream,
        *,
        interval: float,
        cooldown: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._interval = interval
        self._cooldown = cooldown
        self._clock = clock
        self._cards: list[dict[str, Any]] = []
        self._models: tuple[ModelInfo, ...] = ()
        self._unhealthy_until: dict[str, float] = {}
        self._down: dict[str, str] = {}
        self._waiting: dict[str, set[anyio.CancelScope]] = {}
        self._poke = anyio.Event()
        self.loaded = False

    @property
    def models(self) -> tuple[ModelInfo, ...]:
        return self._models

    @property
    def cards(self) -> Sequence[Mapping[str, Any]]:
        return self._cards

    def unhealthy(self) -> frozenset[str]:
        now = self._clock()
        return frozenset(m for m, until in self._unhealthy_until.items() if until > now)

    def mark_unhealthy(self, model_id: str) -> None:
        self._unhealthy_until[model_id] = self._clock() + self._cooldown

    def mark_healthy(self, model_id: str) -> None:
        self._unhealthy_until.pop(model_id, None)

    def down(self) -> Mapping[str, str]:
        """Models whose engine does not answer, with the reason the upstream gave."""
        return dict(self._down)

    @contextmanager
    def watching(self, model_id: str, scope: anyio.CancelScope) -> Iterator[None]:
        """Cancel ``scope`` if ``model_id`` goes down while the block runs (or is down)."""
        if model_id in self._down:
            scope.cancel()
        waiting = self._waiting.setdefault(model_id, set())
        waiting.add(scope)
        try:
            yield
        finally:
            waiting.discard(scope)

    def poke(self) -> None:
        """Ask for a poll now (an upstream answer failed)."""
        self._poke.set()

    def up(self) -> dict[str, bool]:
        """Each model: up (its engine answers) and not marked unhealthy."""
        unhealthy = self.unhealthy()
        return {m.id: m.id not in self._down and m.id not in unhealthy for m in self._models}

    def capabilities(self) -> dict[str, bool]:
        """Each capability a model lists: whether an up model offers it."""
        up = self.up()
        offered: dict[str, bool] = {}
        for model in self._models:
            for capability in model.capabilities:
                offered[capability] = offered.get(capability, False) or up[model.id]
        return offered

    @property
    def ready(self) -> bool:
        return self.loaded and any(self.up().values())

    def replace(self, cards: Sequence[Mapping[str, Any]]) -> None:
        """Install a model list (the ``data`` of ``/v1/models``) and its health marks."""
        self._cards = [dict(c) for c in cards]
        self._models = tuple(model_from_card(c, i) for i, c in enumerate(self._cards))
        self.loaded = True
        down = {str(c["id"]): reason for c in self._cards if (reason := _down_reason(c))}
        for model_id in down.keys() - self._down.keys():
            log.warning("model %s is down: %s", model_id, down[model_id])
        for model_id in self._down.keys() - down.keys():
            log.info("model %s is up again", model_id)
        self._down = down
        for model_id in down:
            for scope in self._waiting.get(model_id, ()):
                scope.cancel()

    async def refresh(self) -> bool:
        """Poll the upstream once; keep the previous list when it fails."""
        try:
            with suppress_http_instrumentation():  # background polls are not requests
                listing = await self._client.get_json("/v1/models")
            self.replace(listing["data"])
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError) as exc:
            log.warning("could not list upstream models: %s", exc)
            return False
        return True

    async def run(self, *, wait_first: bool = False) -> None:
        """Poll forever (until cancelled): every ``interval`` seconds, or at once when poked."""
        while True:
            if not wait_first:
                self._poke = anyio.Event()
                await self.refresh()
            wait_first = False
            with anyio.move_on_after(self._interval):
                await self._poke.wait()


def _down_reason(card: Mapping[str, Any]) -> str | None:
    """Why a card's engine is down, or ``None`` when it is up (or the card does not say)."""
    meta = card.get("metadata")
    health = meta.get("health") if isinstance(meta, Mapping) else None
    if not isinstance(health, Mapping) or health.get("status", "up") == "up":
        return None
    return str(health.get("reason") or "down")
