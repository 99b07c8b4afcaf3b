"""A SQL source's high-water mark: the largest cursor value a published load has read.

The mark is stored as JSON with its kind, so a timestamp comes back as a timestamp. The next
load reads rows with `cursor > mark - lookback`; the mark moves only in the publish transaction.
"""

from __future__ import annotations

import datetime
import decimal
import json
import math
from dataclasses import dataclass

import pyarrow as pa

from etl_platform.warehouse.base import Warehouse
from etl_platform.warehouse.metadata import CURSOR_STATE_SCHEMA, META_SCHEMA

Mark = int | float | decimal.Decimal | str | datetime.datetime | datetime.date


@dataclass(frozen=True)
class HighWater:
    value: Mark

    def to_json(self) -> str:
        value = self.value
        if isinstance(value, datetime.datetime):
            return json.dumps({"kind": "timestamp", "value": value.isoformat()})
        if isinstance(value, datetime.date):
            return json.dumps({"kind": "date", "value": value.isoformat()})
        if isinstance(value, decimal.Decimal):
            return json.dumps({"kind": "decimal", "value": str(value)})
        return json.dumps({"kind": type(value).__name__, "value": value})

    @classmethod
    def from_json(cls, text: str) -> HighWater:
        data = json.loads(text)
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


class CursorState:
    def __init__(self, warehouse: Warehouse, pipeline: str):
        self.warehouse = warehouse
        self.pipeline = pipeline
        self.table = warehouse.relation(META_SCHEMA, "cursor_state")

    def get(self, column: str) -> HighWater | None:
        """The mark of `column`; a mark of another column (the spec's cursor changed) does not count."""
        rows = self.warehouse.query(f"SELECT cursor_column, high_water FROM {self.table} WHERE pipeline = ?", (self.pipeline,))
        return HighWater.from_json(rows[0][1]) if rows and rows[0][0] == column and rows[0][1] else None

    def advance(self, column: str, seen: Mark | None, run_id: str, reset: bool = False) -> HighWater | None:
        """Inside the publish transaction: the mark becomes the larger of itself and `seen`."""
        current = None if reset else self.get(column)
        if seen is None:
            if reset:
                self.warehouse.execute(f"DELETE FROM {self.table} WHERE pipeline = ?", (self.pipeline,))
            return current
        mark = HighWater(seen if current is None else later(seen, current.value))
        self.warehouse.execute(f"DELETE FROM {self.table} WHERE pipeline = ?", (self.pipeline,))
        row = {
            "pipeline": self.pipeline,
            "cursor_column": column,
            "high_water": mark.to_json(),
            "run_id": run_id,
            "updated_at": datetime.datetime.now(datetime.UTC),
        }
        self.warehouse.bulk_insert(self.table, pa.Table.from_pylist([row], CURSOR_STATE_SCHEMA))
        return mark
