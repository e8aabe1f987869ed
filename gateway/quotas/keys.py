"""Names of the Redis keys that hold one quota scope's counters.

A scope is a key id, or a key id and a model when the key overrides its limits for
that model. Every key of a scope carries the same hash tag, so a scope lives on one
Redis Cluster slot and its Lua scripts stay legal there.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.quotas.protocol import ApiKey, Limits

#: The usage ledgers of a scope (ledger.lua): the current minute's and the current day's.
LEDGERS = ("use_min", "use_day")


def scope_for(key: ApiKey, model: str) -> tuple[str, Limits]:
    """The counters a request uses and the limits that apply to them."""
    if model in key.model_limits:
        return f"{key.key_id}/{model}", key.model_limits[model]
    return key.key_id, key.limits


@dataclass(frozen=True, slots=True)
class ScopeKeys:
    """The Redis keys of one scope, in the order the Lua scripts expect."""

    prefix: str
    scope: str

    def _key(self, name: str) -> str:
        tag = self.scope.replace("{", "(").replace("}", ")")
        return f"{self.prefix}q:{{{tag}}}:{name}"

    @property
    def admit(self) -> list[str]:
        """KEYS of admit.lua."""
        names = ("rpm", "tpm", "tpm_amt", "tpm_sum", "leases", "tpd", "pending", *LEDGERS)
        return [self._key(n) for n in names]

    @property
    def settle(self) -> list[str]:
        """KEYS of settle.lua."""
        names = ("leases", "tpm", "tpm_amt", "tpm_sum", "tpd", "pending", *LEDGERS)
        return [self._key(n) for n in names]

    @property
    def charge(self) -> list[str]:
        """KEYS of charge.lua."""
        return [self._key(n) for n in ("tpd", *LEDGERS)]

    def charged(self, account: str) -> list[str]:
        """KEYS of charge.lua charging an account's total (a batch job's, by its id)."""
        return [*self.charge, self._key(f"charged:{account}")]

    @property
    def usage(self) -> list[str]:
        """KEYS of usage.lua."""
        return [self._key(n) for n in ("rpm", "tpm", "tpm_amt", "leases", "tpd", *LEDGERS)]

    @property
    def renew(self) -> list[str]:
        """KEYS of renew.lua."""
        return [self._key("leases")]
