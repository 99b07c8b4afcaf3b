"""A background writer: database writes of chunk k overlap the parsing and transforming of chunk k+1.

pyarrow's CSV reader, DuckDB and psycopg's COPY all release the GIL, so on two cores the load
becomes about max(read + transform, write) instead of their sum. The queue is bounded, so memory
stays at a few chunks; every warehouse write of a run goes through this one thread, in order.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

_STOP = object()


class BackgroundWriter:
    def __init__(self, depth: int = 2):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="etl-writer", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while (item := self._queue.get()) is not _STOP:
            if self._error is None:
                function, args = item
                try:
                    function(*args)
                except BaseException as exc:  # re-raised in the caller's thread
                    self._error = exc

    def submit(self, function: Callable[..., Any], *args: Any) -> None:
        """Queue a write; raises the first error an earlier write hit."""
        self._raise_pending()
        self._queue.put((function, args))

    def close(self) -> None:
        """Wait for every queued write; raises the first error."""
        self._queue.put(_STOP)
        self._thread.join()
        self._raise_pending()

    def _raise_pending(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error
