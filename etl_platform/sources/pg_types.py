"""PostgreSQL text values to Arrow, by type OID: one mapping for the snapshot (COPY text) and the changes (pgoutput).

Both paths of a change-data-capture source give a column the same Arrow type, so the schema a
snapshot registers is the one the change windows are judged against (schema drift). The
sessions that produce the text run with DateStyle ISO and TimeZone UTC (`SESSION_OPTIONS`).
Types not listed arrive as text.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

SESSION_OPTIONS = "-c DateStyle=ISO -c TimeZone=UTC -c extra_float_digits=3"

_CAST: dict[int, pa.DataType] = {
    20: pa.int64(),
    21: pa.int16(),
    23: pa.int32(),
    26: pa.int64(),
    700: pa.float32(),
    701: pa.float64(),
    1082: pa.date32(),
}
_BOOL, _NUMERIC, _TIMESTAMP, _TIMESTAMPTZ, _BYTEA = 16, 1700, 1114, 1184, 17


def arrow_type(type_oid: int, modifier: int) -> pa.DataType:
    """The Arrow type a column of this PostgreSQL type becomes."""
    if type_oid in _CAST:
        return _CAST[type_oid]
    if type_oid == _BOOL:
        return pa.bool_()
    if type_oid == _NUMERIC and modifier >= 4:
        precision, scale = ((modifier - 4) >> 16) & 0xFFFF, (modifier - 4) & 0xFFFF
        return pa.decimal128(precision, scale) if precision <= 38 else pa.string()
    if type_oid == _TIMESTAMP:
        return pa.timestamp("us")
    if type_oid == _TIMESTAMPTZ:
        return pa.timestamp("us", tz="UTC")
    if type_oid == _BYTEA:
        return pa.binary()
    return pa.string()


def _timestamp(text: str) -> datetime.datetime:
    if text[-3:-2] in "+-" and text[-3] != ":":  # "+00": the hour-only offset PostgreSQL writes
        text += ":00"
    return datetime.datetime.fromisoformat(text)


def to_arrow(values: Sequence[str | None], kind: pa.DataType) -> pa.Array:
    """A column of text values (None = NULL) as an Arrow array of `kind`."""
    text = pa.array(values, pa.string())
    if pa.types.is_string(kind):
        return text
    if pa.types.is_boolean(kind):
        return pc.equal(text, "t")
    if pa.types.is_timestamp(kind):
        return pa.array([None if v is None else _timestamp(v) for v in values], kind)
    if pa.types.is_binary(kind):
        return pa.array([None if v is None else bytes.fromhex(v[2:]) for v in values], kind)
    return text.cast(kind)


_COPY_ESCAPE = re.compile(r"\\(.)")
_COPY_CHARS = {"t": "\t", "n": "\n", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "\\": "\\"}


def copy_field(field: str) -> str | None:
    """One field of COPY's text format: `\\N` is NULL, backslash escapes are undone."""
    if field == "\\N":
        return None
    if "\\" not in field:
        return field
    return _COPY_ESCAPE.sub(lambda m: _COPY_CHARS.get(m[1], m[1]), field)


def copy_rows(block: str) -> list[list[str | None]]:
    """The rows of complete lines of COPY text output."""
    return [[copy_field(f) for f in line.split("\t")] for line in block.split("\n") if line]
