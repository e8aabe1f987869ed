"""A circuit breaker in front of the quota Redis: a late answer is awaited, an outage is not.

Every quota call has ``QuotaSettings.timeout`` to answer, long enough for a Redis that
answers late on a machine whose cores are busy. ``breaker_failures`` calls in a row that
fail (no connection, no answer in time) open the breaker; while it is open, calls fail at
once with ``BreakerOpen``, one of ``BACKEND_ERRORS``, so each caller applies the failure
policy it applies to an unreachable Redis (fail-closed: 503 with ``Retry-After``;
fail-open: admit untracked) without waiting out the deadline. ``breaker_cooldown``
seconds after it opened, one call goes through as a probe while the others still fail
at once: the probe's success closes the breaker, its failure opens it for another
cooldown. Any answer from Redis, an error reply too, is a success: Redis is up.

    closed --(N failures in a row)--> open --(cooldown)--> half-open --(probe answered)--> closed
                                        ^---------------(probe failed)----------'
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError, WatchError

from gateway.errors import QuotaBackendUnavailable
from gateway.quotas.client import BACKEND_ERRORS, bounded
from gateway.quotas.settings import QuotaSettings

T = TypeVar("T")
State = Literal["closed", "open", "half_open"]
#: ``gateway_quota_breaker_state``'s value of each state.
STATE_VALUES: dict[State, int] = {"closed": 0, "half_open": 1, "open": 2}
#: Errors that are answers: Redis replied, so it is up.
_ANSWERS = (ResponseError, WatchError)


class BreakerOpen(RedisConnectionError):
    """The breaker is open: the call was not sent (the quota Redis failed just before)."""


class CircuitBreaker:
    """Counts consecutive failed calls to one Redis and stops sending them (module docstring)."""

    def __init__(
        self,
        *,
        failures: int,
        cooldown: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures = failures
        self.cooldown = cooldown
        self._clock = clock
        self._state: State = "closed"
        self._failed = 0
        self._opened_at = 0.0
        self._probing = False

    @classmethod
    def from_settings(cls, settings: QuotaSettings) -> CircuitBreaker:
        return cls(failures=settings.breaker_failures, cooldown=settings.breaker_cooldown)

    @property
    def state(self) -> State:
        if self._state == "open" and self._clock() >= self._opened_at + self.cooldown:
            return "half_open"
        return self._state

    @property
    def state_value(self) -> int:
        return STATE_VALUES[self.state]

    def retry_after(self) -> float:
        """Seconds until a call may reach Redis again (a full cooldown while it is closed)."""
        if self._state == "closed":
            return self.cooldown
        return max(0.0, self._opened_at + self.cooldown - self._clock())

    def _admit(self) -> bool:
        """Whether a call may go out now; a call let through a half-open breaker probes."""
        state = self.state
        if state == "closed":
            return True
        if state == "open" or self._probing:
            return False
        self._state, self._probing = "half_open", True
        return True

    def _succeeded(self) -> None:
        self._state, self._failed, self._probing = "closed", 0, False

    def _failed_once(self, probe: bool) -> None:
        self._failed += 1
        if probe or self._failed >= self.failures:
            self._state, self._opened_at, self._probing = "open", self._clock(), False

    def unavailable(self, message: str) -> QuotaBackendUnavailable:
        """A 503 whose ``Retry-After`` is the time until a call may reach Redis again."""
        retry = max(1, math.ceil(self.retry_after()))
        return QuotaBackendUnavailable(message, headers={"retry-after": str(retry)})

    async def call(self, call: Awaitable[T], seconds: float) -> T:
        """Await ``call`` for at most ``seconds``, unless the breaker is open.

        Raises ``BreakerOpen`` without sending it while the breaker is open, else what
        the call raises.
        """
        if not self._admit():
            if inspect.iscoroutine(call):
                call.close()
            raise BreakerOpen("The quota backend failed just before; the call was not sent.")
        probe = self._probing
        try:
            result = await bounded(call, seconds)
        except _ANSWERS:
            self._succeeded()
            raise
        except BACKEND_ERRORS:
            self._failed_once(probe)
            raise
        except BaseException:  # cancelled: the next call probes instead
            if probe:
                self._probing = False
            raise
        self._succeeded()
        return result
