"""A proactive per-host request budget: a requests-per-second pace, and the server's own rate-limit headers.

Waiting before the server says 429 keeps retries for real failures. `X-RateLimit-Remaining` /
`RateLimit-Remaining` at 0 waits until `X-RateLimit-Reset` / `RateLimit-Reset` (seconds from now,
or an epoch time when it is larger than a day).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

from etl_platform.spec.rest import RateLimit

_DAY = 86_400


def _number(headers: Mapping[str, str], *names: str) -> float | None:
    for name in names:
        value = headers.get(name)
        if value is not None:
            try:
                return float(value.split(",")[0].split(";")[0])
            except ValueError:
                return None
    return None


class HostBudget:
    """When the next request to one host may go."""

    def __init__(self, limit: RateLimit, clock=time.monotonic, sleep=time.sleep):
        self.interval = 1 / limit.requests_per_second if limit.requests_per_second else 0.0
        self.use_headers = limit.use_headers
        self.clock, self.sleep = clock, sleep
        self.next_at = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            delay = self.next_at - self.clock()
            if delay > 0:
                self.sleep(delay)
            self.next_at = max(self.next_at, self.clock()) + self.interval

    def observe(self, headers: Mapping[str, str]) -> None:
        """After a response: an exhausted budget pushes the next request to the reset time."""
        if not self.use_headers:
            return
        remaining = _number(headers, "X-RateLimit-Remaining", "RateLimit-Remaining")
        if remaining is None or remaining > 0:
            return
        reset = _number(headers, "X-RateLimit-Reset", "RateLimit-Reset") or 1.0
        seconds = reset - time.time() if reset > _DAY else reset
        with self._lock:
            self.next_at = max(self.next_at, self.clock() + max(seconds, 0.0))
