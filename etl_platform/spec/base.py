"""What every spec model shares: the strict base class, name and expression field types, durations.

Every model forbids unknown keys, so a typo is an error at load time rather than a silently
ignored setting. Steps and triggers are single-key mappings (`- cast: {...}`), dispatched on
their key so that an error names the step it belongs to.
"""

from __future__ import annotations

import datetime
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from etl_platform.spec.expressions import sql_expression

Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=63)]
DatasetName = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$", max_length=127)]
ColumnName = Annotated[str, StringConstraints(min_length=1, max_length=63)]
SqlExpression = Annotated[
    str,
    StringConstraints(min_length=1),
    AfterValidator(sql_expression),
    Field(description="one SQL expression over the step's columns (DuckDB dialect, allowed functions only)"),
]


class Strict(BaseModel):
    """Base for spec models: unknown keys are errors, values are not coerced across types."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def single_key(value: Any) -> str | None:
    """The kind of a single-key step or trigger: its one key, as a mapping or as a validated model."""
    if isinstance(value, dict) and len(value) == 1:
        return next(iter(value))
    if isinstance(value, Strict):
        return next(iter(type(value).model_fields))
    return None


_DURATION = re.compile(r"(\d+)\s*([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> datetime.timedelta:
    """`90s`, `15m`, `6h`, `2d` or `1w` as a timedelta: one syntax for lookbacks, windows and freshness."""
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration such as '90s', '15m', '6h', '2d' or '1w'")
    return datetime.timedelta(seconds=int(match[1]) * _UNIT_SECONDS[match[2]])
