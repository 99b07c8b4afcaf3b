"""The logical column types a pipeline may name, and how each maps to Arrow and to SQL engines.

Mappings are explicit tables, not inference: a reader can see exactly which PostgreSQL, DuckDB
or SQLite type a published column gets.
"""

from __future__ import annotations

import re

import pyarrow as pa

from etl_platform.errors import DestinationError

_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")

LOGICAL_TYPES = ("string", "int", "float", "bool", "date", "timestamp", "timestamptz", "decimal(p,s)")

_DUCKDB = {
    "string": "VARCHAR",
    "int": "BIGINT",
    "float": "DOUBLE",
    "bool": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "timestamptz": "TIMESTAMPTZ",
}


def is_logical_type(name: str) -> bool:
    """True if `name` is one of LOGICAL_TYPES (decimal with its precision and scale)."""
    return name in _DUCKDB or bool(_DECIMAL.match(name))


def duckdb_type(name: str) -> str:
    """The DuckDB type used to evaluate a cast to logical type `name`."""
    m = _DECIMAL.match(name)
    return f"DECIMAL({m[1]},{m[2]})" if m else _DUCKDB[name]


# MariaDB's names for the PostgreSQL types below, spelled as information_schema reports them, so a
# target's declared types compare equal to a new load's (MariaDB has no time zone type: UTC datetime).
_MARIADB = {
    "text": "longtext",
    "boolean": "tinyint(1)",
    "smallint": "smallint(6)",
    "integer": "int(11)",
    "bigint": "bigint(20)",
    "real": "float",
    "double precision": "double",
    "date": "date",
    "timestamp with time zone": "datetime(6)",
    "timestamp without time zone": "datetime(6)",
}


def sql_type(arrow_type: pa.DataType, dialect: str, column: str) -> str:
    """The column type a published Arrow column gets in `dialect` (postgresql, duckdb, sqlite, mariadb)."""
    t = arrow_type
    if pa.types.is_dictionary(t):
        t = t.value_type
    rows: list[tuple[bool, tuple[str, str, str]]] = [
        (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t), ("text", "VARCHAR", "TEXT")),
        (pa.types.is_boolean(t), ("boolean", "BOOLEAN", "INTEGER")),
        (pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_uint8(t), ("smallint", "SMALLINT", "INTEGER")),
        (pa.types.is_int32(t) or pa.types.is_uint16(t), ("integer", "INTEGER", "INTEGER")),
        (pa.types.is_integer(t), ("bigint", "BIGINT", "INTEGER")),
        (pa.types.is_float32(t), ("real", "FLOAT", "REAL")),
        (pa.types.is_floating(t), ("double precision", "DOUBLE", "REAL")),
        (pa.types.is_date(t), ("date", "DATE", "TEXT")),
        (pa.types.is_timestamp(t) and t.tz is not None, ("timestamp with time zone", "TIMESTAMP WITH TIME ZONE", "TEXT")),
        (pa.types.is_timestamp(t), ("timestamp without time zone", "TIMESTAMP", "TEXT")),
    ]
    if pa.types.is_decimal(t):
        exact = f"decimal({t.precision},{t.scale})"
        names = {"postgresql": f"numeric({t.precision},{t.scale})", "duckdb": exact.upper(), "mariadb": exact}
        return names.get(dialect, "NUMERIC")
    index = {"postgresql": 0, "duckdb": 1, "sqlite": 2, "mariadb": 0}[dialect]
    for matches, names in rows:
        if matches:
            return _MARIADB[names[0]] if dialect == "mariadb" else names[index]
    raise DestinationError(
        f"column '{column}' has type {arrow_type}, which the {dialect} warehouse cannot store; "
        f"cast it to one of {', '.join(LOGICAL_TYPES)} with a `cast` transform"
    )
