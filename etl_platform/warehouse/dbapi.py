"""DB-API query results as Arrow tables, typed from the cursor's description where the driver says.

The PostgreSQL and SQLite dialects and the SQL source read rows through DB-API cursors; this turns
those rows into Arrow batches whose types agree from the first batch to the last.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import orjson
import pyarrow as pa

# PostgreSQL type OIDs (as DB-API descriptions report them) -> Arrow types, so a query's result has
# its declared types even when a batch is empty or a column all null.
_PG_TYPES: dict[int, pa.DataType] = {
    16: pa.bool_(),
    20: pa.int64(),
    21: pa.int16(),
    23: pa.int32(),
    700: pa.float32(),
    701: pa.float64(),
    1082: pa.date32(),
    1114: pa.timestamp("us"),
    1184: pa.timestamp("us", tz="UTC"),
    **dict.fromkeys((19, 25, 114, 1042, 1043, 2950, 3802), pa.string()),
}


def described_type(column: object) -> pa.DataType | None:
    """The Arrow type of a DB-API description entry, where the driver reports PostgreSQL's types."""
    code = getattr(column, "type_code", None)
    if code == 1700:  # numeric: its declared precision, or room for any value of a plain numeric
        precision, scale = getattr(column, "precision", None), getattr(column, "scale", None)
        return pa.decimal128(precision, scale) if precision and scale is not None else pa.decimal128(38, 18)
    return _PG_TYPES.get(code) if isinstance(code, int) else None


# MySQL/MariaDB field type codes (as PyMySQL's descriptions report them) -> Arrow types. TINYINT,
# BOOLEAN's storage, reads as int8: the protocol does not tell the two apart.
_MYSQL_TYPES: dict[int, pa.DataType] = {
    1: pa.int8(),
    2: pa.int16(),
    3: pa.int32(),
    9: pa.int32(),
    8: pa.int64(),
    13: pa.int16(),
    4: pa.float32(),
    5: pa.float64(),
    10: pa.date32(),
    7: pa.timestamp("us"),
    12: pa.timestamp("us"),
    **dict.fromkeys((11, 15, 245, 247, 248, 252, 253, 254), pa.string()),
}


def mysql_described_type(column: Sequence) -> pa.DataType | None:
    """The Arrow type of a PyMySQL description entry (name, type code, -, length, length, scale, -).

    A DECIMAL's reported length counts its sign and point, so it is an upper bound of the
    precision: the type is the same on every read, whatever the values.
    """
    code, length, scale = column[1], column[3], column[5]
    if code in (0, 246):
        return pa.decimal128(min(38, max(length or 38, (scale or 0) + 1)), scale or 0)
    return _MYSQL_TYPES.get(code)


def _as_text(value: object) -> object:
    if value is None or isinstance(value, str):
        return value
    return orjson.dumps(value, default=str).decode() if isinstance(value, dict | list) else str(value)


def rows_to_arrow(names: list[str], rows: list[tuple], types: list[pa.DataType | None] | None = None) -> pa.Table:
    """Arrow table from DB-API rows, in `types` where known; unknown all-null columns become text."""
    columns = {}
    for i, name in enumerate(names):
        kind = types[i] if types else None
        values = [r[i] for r in rows]
        if kind is not None and pa.types.is_string(kind):
            values = [_as_text(v) for v in values]
        column = pa.array(values, type=kind)
        columns[name] = column.cast(pa.string()) if pa.types.is_null(column.type) else column
    return pa.table(columns)


Typer = Callable[[object], pa.DataType | None]


def cursor_batches(cursor, batch_rows: int) -> Iterator[pa.Table]:
    """Stream an executed DB-API cursor's rows as Arrow tables (at least one, maybe empty)."""
    return described_batches(cursor.description, cursor.fetchmany, batch_rows)


def described_batches(
    description: Sequence, fetchmany: Callable[[int], Sequence], batch_rows: int, typer: Typer = described_type
) -> Iterator[pa.Table]:
    """Rows from `fetchmany` as Arrow tables, typed by the DB-API `description` (`typer`: the driver's codes).

    Types come from the description where the driver reports them (PostgreSQL, MySQL); otherwise from the
    first batch that has rows, and later batches are cast to them, so batches agree.
    """
    names = [d[0] for d in description]
    types: list[pa.DataType | None] = [typer(d) for d in description]
    empty = True
    while rows := fetchmany(batch_rows):
        empty = False
        table = rows_to_arrow(names, rows, types)
        if any(t is None for t in types):
            types = [t or table.schema.field(i).type for i, t in enumerate(types)]
        yield table.cast(pa.schema([(n, t) for n, t in zip(names, types, strict=True)]))
    if empty:
        yield rows_to_arrow(names, [], types)
