"""Retry transient I/O with exponential backoff and jitter; permanent errors are not retried.

`is_transient` is the platform's one classification of a failure (docs/how-a-run-works.md,
"Failures"): the Dagster layer retries a step and the file-arrival sensor retries a file only
for these; everything else fails at once with its message.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from etl_platform.errors import EtlError

T = TypeVar("T")
log = logging.getLogger(__name__)


def with_backoff(
    action: Callable[[], T],
    is_transient: Callable[[BaseException], bool],
    attempts: int = 4,
    base_seconds: float = 0.5,
    max_seconds: float = 8.0,
) -> T:
    """Call `action`; on a transient error wait base*2^n (full jitter) and try again."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as exc:
            if attempt == attempts or not is_transient(exc):
                raise
            delay = random.uniform(0, min(max_seconds, base_seconds * 2 ** (attempt - 1)))
            log.warning("transient error (attempt %d of %d), retrying in %.2fs: %s", attempt, attempts, delay, exc)
            time.sleep(delay)
    raise AssertionError("unreachable")


def is_transient(error: BaseException) -> bool:
    """May the same work succeed later, unchanged?

    The platform's own errors say so themselves (`EtlError.transient`: only outages and locks).
    Of the others, a lost or refused network connection, a timeout and a database's
    OperationalError family (a dropped connection, a deadlock, a serialization failure, a lock)
    are transient; anything else (a TypeError, a KeyError) is a bug, and retrying a bug only
    repeats it.
    """
    if isinstance(error, EtlError):
        return error.transient
    if isinstance(error, ConnectionError | TimeoutError):
        return True
    return any(kind.__name__ == "OperationalError" for kind in type(error).__mro__)
