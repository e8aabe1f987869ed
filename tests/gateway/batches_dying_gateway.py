"""A gateway process that SIGKILLs itself inside a batch job's charge.

    python -m tests.gateway.batches_dying_gateway UPSTREAM PREFIX FILES_DIR READY GO AT WHEN

Serves the gateway of ``batches_support.settings`` (the Batch API on the shared Redis
under ``PREFIX``, files in ``FILES_DIR``) with a ``ScriptedEngine`` of two-line blocks
that starts only once the file ``GO`` exists, and writes its base URL to ``READY``.
The first time a job's journal total reaches ``AT`` tokens, its charger kills the
process with SIGKILL - nothing more runs, the job's lease is left to expire - either
``before`` the charge (the block is journalled, not charged) or right ``after`` it.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from gateway.batches.charges import TokenCharger
from gateway.quotas.gate import DayCharge
from gateway.quotas.protocol import ApiKey
from tests.gateway.batches_support import ScriptedEngine, running_gateway, service, settings


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class DyingCharger:
    """A ``TokenCharger`` that kills the process when a total reaches ``at`` tokens."""

    def __init__(self, charger: TokenCharger, at: int, when: str) -> None:
        self.charger = charger
        self.at = at
        self.when = when

    async def charge(self, key: ApiKey, model: str, tokens: int) -> DayCharge:
        return await self.charger.charge(key, model, tokens)

    async def charge_total(
        self, key: ApiKey, model: str, account: str, total: int, keep: float
    ) -> DayCharge:
        if total >= self.at and self.when == "before":
            _die()
        day = await self.charger.charge_total(key, model, account, total, keep)
        if total >= self.at:
            _die()
        return day


def main(
    upstream: str, prefix: str, files_dir: str, ready: str, go: str, at: str, when: str
) -> None:
    engine = ScriptedEngine(block=2, pause_after=0, resume=Path(go).exists)
    with running_gateway(settings(upstream, prefix, Path(files_dir)), engine) as (app, http):
        charges = service(app).supervisor.ctx.charges  # the finalizer's too: one instance
        charges.charger = DyingCharger(charges.charger, int(at), when)
        written = Path(ready + ".tmp")
        written.write_text(str(http.base_url))
        written.rename(ready)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the charger ends the process
            time.sleep(0.1)
    sys.exit("the gateway was never killed")


if __name__ == "__main__":
    main(*sys.argv[1:])
