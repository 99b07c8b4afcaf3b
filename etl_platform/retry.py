"""Retry transient I/O with exponential backoff and jitter; permanent errors are not retried."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

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
