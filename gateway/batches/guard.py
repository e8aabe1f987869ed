"""An engine wrapper that lets a running job be charged, cancelled and stopped between blocks.

``batch.runner.run_batch`` journals each result block before it asks the engine for the
next one, so the moment the wrapped ``run`` resumes after a ``yield`` is the moment the
previous block became durable. ``GuardedEngine`` calls its ``JobControl`` there (and
before a variant starts): the control charges what the journal then holds and was not
charged yet (``gateway.batches.charges``; a runner that dies before it does leaves the
charge to the next reconcile, so a journalled block is charged once), and raises one of
the exceptions below to end the run; everything journalled so far stays done.

A run that must end while a block is in flight (the batch cancelled or past its window,
the gateway stopping, the lease lost) has its engine aborted by the job
(``gateway.batches.jobs``): the aborted results are left out of the block, so they are
neither journalled nor charged, and the ``after`` that follows ends the run.

    JobStopped        the run ends early
    ├── JobCancelled  the batch was cancelled: finalize what is done
    ├── JobExpired    the batch is past its completion window: expire it
    └── JobInterrupted the gateway is stopping or lost the job's lease: resume later
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from typing import Protocol

from batch.engine import BatchEngine, EngineResult
from batch.requests import PromptRequest


class JobStopped(Exception):
    """The job's run ended before its last block."""


class JobCancelled(JobStopped):
    """The batch is being cancelled."""


class JobExpired(JobStopped):
    """The batch's completion window has passed."""


class JobInterrupted(JobStopped):
    """This runner must stop (shutdown, or the lease went to another runner)."""


class JobControl(Protocol):
    """What a job consults from its thread; either method may raise to end the run."""

    def before(self, variant: str) -> None:
        """Called before ``variant``'s requests run."""
        ...

    def after(self, variant: str, block: Sequence[EngineResult], more: bool) -> None:
        """Called once ``block`` is journalled; ``more`` when requests of ``variant`` remain."""
        ...


class GuardedEngine:
    """A ``BatchEngine`` that consults a ``JobControl`` around every block."""

    def __init__(self, engine: BatchEngine, control: JobControl) -> None:
        self.engine = engine
        self.control = control

    def run(self, variant: str, requests: Sequence[PromptRequest]) -> Iterator[list[EngineResult]]:
        self.control.before(variant)
        blocks = self.engine.run(variant, requests)
        seen = 0
        try:
            for block in blocks:
                done = [r for r in block if not r.aborted]
                yield done
                seen += len(done)
                self.control.after(variant, done, more=seen < len(requests))
        finally:
            if isinstance(blocks, Generator):
                blocks.close()

    def abort(self) -> None:
        self.engine.abort()

    def close(self) -> None:
        self.engine.close()
