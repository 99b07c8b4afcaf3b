"""One circuit breaker per external system (an S3 endpoint, a database server).

When a system is down, every step that touches it would otherwise spend its whole retry budget
waiting on it. After `failures` consecutive transient failures (each already retried with
backoff; ETL_BREAKER_FAILURES) the breaker opens: calls fail at once with a message that says
how long the cool-down is. After `cooldown_seconds` (ETL_BREAKER_COOLDOWN_SECONDS) one call
probes; success closes the breaker.

A `BreakerBoard` holds the breakers of one process: the code location builds one from the
settings and hands it to the resources, so a sensor's listing in the daemon and a run's steps
(the pipeline jobs execute in process) share them. Permanent errors (bad credentials, a missing
bucket) do not count: they are the user's to fix, and failing fast is already what they do.
"""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable
from typing import TypeVar

import pybreaker

from etl_platform.errors import EtlError
from etl_platform.settings import BreakerSettings

T = TypeVar("T")


class SystemUnavailable(EtlError):
    """An external system is down or its circuit breaker is open: worth trying again later."""

    transient = True


class BreakerBoard:
    """The breakers of the external systems one process talks to, created on first use."""

    def __init__(self, settings: BreakerSettings | None = None):
        self.settings = settings or BreakerSettings()
        self._breakers: dict[str, pybreaker.CircuitBreaker] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"BreakerBoard({self.settings}, open={[s for s, b in self._breakers.items() if b.current_state == 'open']})"

    def breaker(self, system: str, is_transient: Callable[[BaseException], bool]) -> pybreaker.CircuitBreaker:
        """The breaker guarding `system`."""
        with self._lock:
            if system not in self._breakers:
                self._breakers[system] = pybreaker.CircuitBreaker(
                    fail_max=self.settings.failures,
                    reset_timeout=self.settings.cooldown_seconds,
                    exclude=[lambda exc: not is_transient(exc)],
                    throw_new_error_on_trip=False,
                    name=system,
                )
            return self._breakers[system]

    def guarded(self, system: str, action: Callable[[], T], is_transient: Callable[[BaseException], bool]) -> T:
        """Run `action` through `system`'s breaker: fail fast while it is open."""
        breaker = self.breaker(system, is_transient)
        try:
            return breaker.call(action)
        except pybreaker.CircuitBreakerError:
            cooldown = datetime.timedelta(seconds=breaker.reset_timeout)
            raise SystemUnavailable(
                f"{system} failed {breaker.fail_max} times in a row, so calls to it are stopped for {cooldown} "
                f"(circuit breaker open); check that it is up. The next call after the cool-down tries again"
            ) from None
