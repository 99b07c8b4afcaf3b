"""The REST source's checkpoint: a cursor per parent key, advanced only with the publish.

A child resource keeps one cursor per parent (its key), so parents never share a cursor. Without
a look-back, the records at the cursor's value that were loaded are remembered by hash
(`boundary`): the next run asks again from that value (APIs filter with >=) and skips exactly
those, so an append publishes each record once without deduplicating on a key.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from etl_platform.spec.base import parse_duration
from etl_platform.state.positions import Position, saved_position
from etl_platform.warehouse.base import Warehouse

NO_PARENT = ""


def ordered(value: Any) -> Any:
    """A cursor value made comparable: numbers as numbers, everything else as text."""
    return value if isinstance(value, int | float) and not isinstance(value, bool) else str(value)


def later(a: dict | None, b: dict | None) -> dict | None:
    """Of two saved cursors, the later; equal values join their boundary hashes."""
    if a is None or b is None:
        return a or b
    left, right = ordered(a["value"]), ordered(b["value"])
    if type(left) is not type(right):
        left, right = str(left), str(right)
    if left == right:
        return {"value": a["value"], "boundary": sorted(set(a["boundary"]) | set(b["boundary"]))}
    return a if left > right else b


def less_lookback(value: Any, lookback: int | str) -> Any:
    """Where a read starts: the cursor, `lookback` earlier (a duration for ISO timestamps, a number for numbers)."""
    if not lookback:
        return value
    if isinstance(lookback, str):
        moment = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        earlier = (moment - parse_duration(lookback)).isoformat()
        return earlier.replace("+00:00", "Z") if str(value).endswith("Z") else earlier
    return value - lookback


def saved_cursors(saved: object, cursor_path: str) -> dict[str, dict]:
    """The per-parent cursors of a saved position; another cursor path (the spec changed) does not count."""
    if not isinstance(saved, dict) or saved.get("rest_cursor_path") != cursor_path:
        return {}
    return dict(saved.get("cursors", {}))


@dataclass(frozen=True)
class RestCursors:
    """Saved in the publish transaction: each parent's cursor becomes the later of the saved and the read one."""

    cursor_path: str
    cursors: dict[str, dict]
    reset: bool = False

    def save(self, target: Warehouse, pipeline: str, run_id: str) -> None:
        merged = {} if self.reset else saved_cursors(saved_position(target, pipeline), self.cursor_path)
        for key, cursor in self.cursors.items():
            merged[key] = later(merged.get(key), cursor)
        Position({"rest_cursor_path": self.cursor_path, "cursors": merged}).save(target, pipeline, run_id)
