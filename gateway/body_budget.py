"""Request-body bytes one process holds: in all, and per client address without a key.

A request takes bytes as its body arrives (a declared ``Content-Length`` at once) and
gives them all back when it ends. Past the total the request is refused with 503
(``BodyBudgetExceeded``: the process is full, another replica or a later try may do);
past its client address's share, with 429 (``PeerBodyBudgetExceeded``: that client
sends too much at once). Both say ``Retry-After``. Requests with an authenticated key
count only towards the total: their keys have quotas of their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from gateway.errors import BodyBudgetExceeded, PeerBodyBudgetExceeded

#: Seconds a refused client is told to wait: bodies in flight end within seconds.
RETRY_AFTER = 1


@dataclass
class Hold:
    """The bytes one request holds; ``peer`` is ``None`` for an authenticated request."""

    budget: BodyBudget
    peer: str | None
    size: int = 0

    def take(self, size: int) -> None:
        self.budget.take(self.peer, size)
        self.size += size


@dataclass
class BodyBudget:
    total: int
    per_peer: int
    held: int = 0
    by_peer: dict[str, int] = field(default_factory=dict)

    @contextmanager
    def hold(self, peer: str | None) -> Iterator[Hold]:
        """A request's hold, given back when the block ends."""
        hold = Hold(self, peer)
        try:
            yield hold
        finally:
            self._give_back(hold)

    def take(self, peer: str | None, size: int) -> None:
        if self.held + size > self.total:
            raise BodyBudgetExceeded(
                f"The gateway holds as many request-body bytes as it may ({self.total}); "
                "retry later.",
                headers={"retry-after": str(RETRY_AFTER)},
            )
        if peer is not None:
            if self.by_peer.get(peer, 0) + size > self.per_peer:
                raise PeerBodyBudgetExceeded(
                    f"Requests without an API key from {peer} hold as many request-body "
                    f"bytes as they may ({self.per_peer}); retry later.",
                    retry_after=RETRY_AFTER,
                )
            self.by_peer[peer] = self.by_peer.get(peer, 0) + size
        self.held += size

    def _give_back(self, hold: Hold) -> None:
        self.held -= hold.size
        if hold.peer is not None:
            left = self.by_peer.pop(hold.peer, 0) - hold.size
            if left > 0:
                self.by_peer[hold.peer] = left
