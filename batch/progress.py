"""The command line's progress bar: lines/s, and tokens/s as a postfix."""

from __future__ import annotations

import time
from typing import Any

from batch.runner import Progress


class TqdmProgress(Progress):
    """A tqdm bar over input lines (lines skipped on resume count as done)."""

    def __init__(self, **tqdm_kwargs: Any) -> None:
        self._kwargs = tqdm_kwargs
        self._bar: Any = None
        self._tokens = 0
        self._started = time.monotonic()

    def start(self, total: int, initial: int) -> None:
        from tqdm import tqdm

        self._started = time.monotonic()
        self._bar = tqdm(
            total=total, initial=initial, unit="line", dynamic_ncols=True, **self._kwargs
        )

    def advance(self, lines: int, tokens: int) -> None:
        if self._bar is None:
            return
        self._tokens += tokens
        elapsed = max(time.monotonic() - self._started, 1e-6)
        self._bar.set_postfix_str(f"{self._tokens / elapsed:.1f} tok/s", refresh=False)
        self._bar.update(lines)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
