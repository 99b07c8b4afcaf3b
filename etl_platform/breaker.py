"""One circuit breaker per external system (an S3 endpoint, a database server).

When a system is down, every step that touches it would otherwise spend its whole retry budget
waiting on it. After `ETL_BREAKER_FAILURES` consecutive transient failures (each already retried
with backoff) the breaker opens: calls fail at once with a message that says how long the
cool-down is. After `ETL_BREAKER_COOLDOWN_SECONDS` one call probes; success closes the breaker.

Breakers live in the process: a sensor's listing in the daemon, and a run's steps (the pipeline
jobs execute in process), share them. Permanent errors (bad credentials, a missing bucket) do
not count: they are the user's to fix, and failing fast is already what they do.
"""

from __future__ import annotations

import datetime
import os
import threading
from collections.abc import Callable
from typing import TypeVar

import pybreaker

from etl_platform.errors import EtlError

T = TypeVar("T")

_breakers: dict[str, pybreaker.CircuitBreaker] = {}
_lock = threading.Lock()


class SystemUnavailable(EtlError):
    """An external system's circuit breaker is open: the call was not attempted."""


def breaker_for(system: str, is_transient: Callable[[BaseException], bool]) -> pybreaker.CircuitBreaker:
    """The breaker guarding `system` (created on first use with the environment's settings)."""
    with _lock:
        if system not in _breakers:
            _breakers[system] = pybreaker.CircuitBreaker(
                fail_max=int(os.environ.get("ETL_BREAKER_FAILURES", "5")),
                reset_timeout=float(os.environ.get("ETL_BREAKER_COOLDOWN_SECONDS", "30")),
                exclude=[lambda exc: not is_transient(exc)],
                throw_new_error_on_trip=False,
                name=system,
            )
        return _breakers[system]


def guarded(system: str, action: Callable[[], T], is_transient: Callable[[BaseException], bool]) -> T:
    """Run `action` through `system`'s breaker: fail fast while it is open."""
    breaker = breaker_for(system, is_transient)
    try:
        return breaker.call(action)
    except pybreaker.CircuitBreakerError:
        cooldown = datetime.timedelta(seconds=breaker.reset_timeout)
        raise SystemUnavailable(
            f"{system} failed {breaker.fail_max} times in a row, so calls to it are stopped for {cooldown} "
            f"(circuit breaker open); check that it is up. The next call after the cool-down tries again"
        ) from None


def reset_breakers() -> None:
    """Forget every breaker's state (a new process starts closed; tests start each case closed)."""
    with _lock:
        _breakers.clear()
