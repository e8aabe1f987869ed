"""The time batches and files are stamped and judged by: whole seconds since the epoch.

One ``Clock`` is shared by everything the Batch API of a gateway process assembles (the
routes' service, the jobs, the finalizer, the supervisor), so ``created_at``,
``expires_at`` and the moment a deadline passes all come from the same ``source``. Tests
replace ``source`` to stand past a deadline without waiting for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Clock:
    """``now()``: the current second, from ``source`` (default ``time.time``)."""

    def __init__(self, source: Callable[[], float] = time.time) -> None:
        self.source = source

    def now(self) -> int:
        return int(self.source())
