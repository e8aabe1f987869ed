"""The engine seam of a batch job.

``BatchEngine.run`` takes the prompt requests of one variant and yields their results in
blocks, in completion order (not input order), as soon as each block is done; the runner
journals every block before asking for the next, so a killed job loses at most the
blocks in flight. A request the engine fails on comes back as a result with ``error``
set; an exception from ``run`` aborts the job (everything journalled so far stays done).

``abort`` (called from another thread while ``run`` is waiting on a block) stops the
engine's work on the requests in flight: they come back at once with ``aborted`` set,
which a job never journals, so a resumed job runs them again.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from batch.requests import PromptRequest


class RequestAborted(Exception):
    """A request an engine stopped because its run was aborted (``BatchEngine.abort``)."""


def is_abort_error(error: object) -> bool:
    """Whether an engine's error text for a row is a ``RequestAborted``."""
    return isinstance(error, str) and error.startswith(f"{RequestAborted.__name__}:")


@dataclass(frozen=True, slots=True)
class EngineResult:
    """The generation for one request (or the engine's error for it)."""

    custom_id: str
    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"
    error: str | None = None
    aborted: bool = False


def finish_reason(completion_tokens: int, max_tokens: int | None) -> str:
    """OpenAI's finish reason, from whether generation hit ``max_tokens``."""
    return "length" if max_tokens is not None and completion_tokens >= max_tokens else "stop"


class BatchEngine(Protocol):
    """Runs the requests of one variant; see the module docstring for the contract."""

    def run(self, variant: str, requests: Sequence[PromptRequest]) -> Iterator[list[EngineResult]]:
        """Yield result blocks for ``requests`` (all served by ``variant``)."""
        ...

    def abort(self) -> None:
        """Stop the requests in flight and any later ones of this run (thread-safe)."""
        ...

    def close(self) -> None:
        """Release engines and the Ray connection."""
        ...
