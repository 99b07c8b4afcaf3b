"""The LOAD DATA text of Arrow tables: escapes, NULLs, booleans, timestamps, and chunked or sliced input
(the bytes come straight from Arrow's buffers, so a chunk's offsets must be honoured)."""

from __future__ import annotations

import datetime

import pyarrow as pa

from etl_platform.warehouse.mariadb_load import tsv_bytes

TABLE = pa.table(
    {
        "id": [1, None, 3],
        "note": ["tab\there\\", None, "line\nbreak\x00"],
        "ok": [True, False, None],
        "at": pa.array([datetime.datetime(2026, 11, 22, 10, 30, tzinfo=datetime.UTC), None, None], pa.timestamp("us", "UTC")),
    }
)


def test_values_are_escaped_and_nulls_are_backslash_n() -> None:
    assert tsv_bytes(TABLE) == (
        b"1\ttab\\there\\\\\t1\t2026-11-22 10:30:00.000000\n\\N\t\\N\t0\t\\N\n3\tline\\nbreak\\0\t\\N\t\\N\n"
    )


def test_sliced_and_chunked_tables_give_the_rows_they_hold() -> None:
    chunked = pa.concat_tables([TABLE.slice(1), TABLE.slice(0, 1)])
    assert tsv_bytes(chunked).splitlines() == [tsv_bytes(TABLE).splitlines()[i] for i in (1, 2, 0)]
    assert tsv_bytes(TABLE.select(["note"]).slice(1, 1)) == b"\\N\n"
