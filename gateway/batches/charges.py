"""A batch's tokens on its owner's day: charged from the job's journal, exactly once.

The journal (``jobs/<batch id>.jsonl``) is the record of what a job spent: its answered
lines and their usage, per model (``tally.Usage``). Charging is a reconcile against it.
A key's tokens per day are counted per quota scope (``gateway.quotas.keys.scope_for``:
the key, or the key and a model it has limits of its own for); for each scope the
journal's models fall in, ``RedisQuotaGate.charge_total`` brings what this batch has
been charged there up to the journal's total for that scope: it adds the difference to
the day and records the new total in one Lua call. The record lives beside the scope's
day counter, on its Redis Cluster slot, so the two cannot part.

A run charges after every journalled block and, before a variant starts, reconciles the
whole journal; the ``Finalizer`` reconciles once more before a batch ends. Whatever
moment a runner dies at, the key's days end up charged the journal's tokens once:

- after a block is journalled, before its charge: the next runner's reconcile (when it
  resumes the job, or when it ends the batch) charges what the record lacks;
- after the charge: the record already holds the journal's total; nothing is added.

A total below the record adds nothing: a charge is never taken back.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Protocol

from gateway.batches.objects import BatchRecord
from gateway.errors import NotFound
from gateway.quotas.gate import DayCharge
from gateway.quotas.keys import scope_for
from gateway.quotas.protocol import ApiKey

log = logging.getLogger(__name__)

#: Seconds a batch's charge record outlives its last charge: far beyond any batch's
#: life (its 24-hour window), so no reconcile of a batch can find its record gone.
RECORD_TTL = 30 * 24 * 3600.0


class TokenCharger(Protocol):
    async def charge(self, key: ApiKey, model: str, tokens: int) -> DayCharge:
        """Add spent tokens to the key's day (0 only reads it); see ``RedisQuotaGate``."""
        ...

    async def charge_total(
        self, key: ApiKey, model: str, account: str, total: int, keep: float
    ) -> DayCharge:
        """Charge what ``account`` spent beyond its record; see ``RedisQuotaGate``."""
        ...


class KeyLookup(Protocol):
    async def get(self, key_id: str) -> ApiKey:
        """The key with this id, revoked ones too (``NotFound`` otherwise)."""
        ...


def scope_total(key: ApiKey, usage: Mapping[str, int], model: str) -> int:
    """The tokens of ``usage`` that fall in ``model``'s scope of ``key``."""
    scope = scope_for(key, model)[0]
    return sum(tokens for name, tokens in usage.items() if scope_for(key, name)[0] == scope)


class BatchCharges:
    """Charges batches' journalled tokens to their keys' days (see the module docstring)."""

    def __init__(self, charger: TokenCharger, keys: KeyLookup) -> None:
        self.charger = charger
        self.keys = keys

    async def settle(
        self, key: ApiKey, batch_id: str, usage: Mapping[str, int], model: str
    ) -> DayCharge:
        """Charge ``model``'s scope what ``usage`` (the journal's) holds beyond the record.

        Returns that scope's day after the charge (with nothing owed: as it stands).
        """
        total = scope_total(key, usage, model)
        return await self.charger.charge_total(key, model, batch_id, total, RECORD_TTL)

    async def settle_all(self, key: ApiKey, batch_id: str, usage: Mapping[str, int]) -> int:
        """``settle`` every scope ``usage`` has tokens in; the tokens charged now."""
        models = {scope_for(key, m)[0]: m for m, tokens in usage.items() if tokens > 0}
        charged = 0
        for model in models.values():
            charged += (await self.settle(key, batch_id, usage, model)).charged
        if charged:
            log.info("batch %s: charged %d journalled tokens not charged before", batch_id, charged)
        return charged

    async def settle_owner(self, record: BatchRecord, usage: Mapping[str, int]) -> None:
        """``settle_all`` for the batch's owner (a key that no longer exists has no day)."""
        if not any(usage.values()):
            return
        try:
            key = await self.keys.get(record.owner)
        except NotFound:
            log.warning("batch %s: its key is gone; its tokens are not charged", record.id)
            return
        await self.settle_all(key, record.id, usage)
