"""The upstream's models, polled from ``GET /v1/models``, with a passive health mark per model.

A model that refused a connection or answered 503 is marked unhealthy for
``cooldown`` seconds: routing then tries it only after every healthy candidate.
A failed poll keeps the last good list (the upstream may be restarting); the
registry is *ready* once a poll has succeeded and at least one model is healthy.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
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

    @property
    def ready(self) -> bool:
        down = self.unhealthy()
        return self.loaded and any(m.id not in down for m in self._models)

    def replace(self, cards: Sequence[Mapping[str, Any]]) -> None:
        """Install a model list (the ``data`` of ``/v1/models``)."""
        self._cards = [dict(c) for c in cards]
        self._models = tuple(model_from_card(c, i) for i, c in enumerate(self._cards))
        self.loaded = True

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

    async def run(self) -> None:
        """Poll forever (until cancelled)."""
        while True:
            await self.refresh()
            await anyio.sleep(self._interval)
