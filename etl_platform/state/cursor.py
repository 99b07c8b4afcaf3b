"""A SQL source's high-water mark: the largest cursor value a published load has read.

The mark is saved as the source's position (state.positions) with its kind, so a timestamp comes
back as a timestamp. The next load reads rows with `cursor > mark - lookback`; the mark moves only
in the publish transaction, as every source checkpoint does.
"""

from __future__ import annotations

import datetime
import decimal
import math
from dataclasses import dataclass

from etl_platform.state.positions import Position, saved_position
from etl_platform.warehouse.base import Warehouse

Mark = int | float | decimal.Decimal | str | datetime.datetime | datetime.date


@dataclass(frozen=True)
class HighWater:
    value: Mark

    def to_json_value(self) -> dict:
        """The mark with its kind, so a timestamp comes back as a timestamp."""
        value = self.value
        if isinstance(value, datetime.datetime):
            return {"kind": "timestamp", "value": value.isoformat()}
        if isinstance(value, datetime.date):
            return {"kind": "date", "value": value.isoformat()}
        if isinstance(value, decimal.Decimal):
            return {"kind": "decimal", "value": str(value)}
        return {"kind": type(value).__name__, "value": value}

    @classmethod
    def from_json_value(cls, data: dict) -> HighWater:
        kind, value = data["kind"], data["value"]
        if kind == "timestamp":
            return cls(datetime.datetime.fromisoformat(value))
        if kind == "date":
            return cls(datetime.date.fromisoformat(value))
        if kind == "decimal":
            return cls(decimal.Decimal(value))
        return cls(value)

    def minus(self, lookback: int | datetime.timedelta) -> Mark:
        """The lower bound of the next read: the mark, `lookback` earlier (whole days, rounded up, for dates)."""
        if not lookback:
            return self.value
        value = self.value
        if isinstance(lookback, datetime.timedelta) and isinstance(value, datetime.date):
            if not isinstance(value, datetime.datetime):
                return value - datetime.timedelta(days=math.ceil(lookback / datetime.timedelta(days=1)))
            return value - lookback
        if isinstance(lookback, int) and isinstance(value, int | float | decimal.Decimal) and not isinstance(value, bool):
            return value - lookback
        raise ValueError(
            f"a lookback of {lookback!r} does not fit a cursor holding {type(value).__name__} values; "
            "use a duration ('2h') for dates and timestamps, a number for numeric cursors, none for text"
        )


def later(a: Mark, b: Mark) -> Mark:
    """The larger mark; a timestamp without a zone is taken as UTC when the other has one."""
    if isinstance(a, datetime.datetime) and isinstance(b, datetime.datetime) and (a.tzinfo is None) != (b.tzinfo is None):
        a_utc = a if a.tzinfo else a.replace(tzinfo=datetime.UTC)
        b_utc = b if b.tzinfo else b.replace(tzinfo=datetime.UTC)
        return a if a_utc >= b_utc else b
    return a if a >= b else b


@dataclass(frozen=True)
class CursorCheckpoint:
    """A SQL source's checkpoint: the mark becomes the larger of the saved one and the largest value read.

    The saved mark is read again inside the publish transaction, so two loads of one pipeline that
    overlap (a CLI run beside a schedule) never move it backwards. `reset` (a full refresh) replaces it;
    a full refresh that read nothing forgets it.
    """

    column: str
    seen: Mark | None
    reset: bool = False

    def save(self, target: Warehouse, pipeline: str, run_id: str) -> None:
        current = None if self.reset else saved_mark(saved_position(target, pipeline), self.column)
        if self.seen is None:
            if self.reset:
                Position(None).save(target, pipeline, run_id)
            return
        mark = self.seen if current is None else later(self.seen, current.value)
        Position(cursor_position(self.column, HighWater(mark))).save(target, pipeline, run_id)


def cursor_position(column: str, mark: HighWater) -> dict:
    """The saved position of a SQL source (state.positions): its cursor column and high-water mark."""
    return {"cursor_column": column, "high_water": mark.to_json_value()}


def saved_mark(position: object, column: str) -> HighWater | None:
    """The mark of `column` in a saved position; a mark of another column (the spec's cursor changed) does not count."""
    if not isinstance(position, dict) or position.get("cursor_column") != column or not position.get("high_water"):
        return None
    return HighWater.from_json_value(position["high_water"])
