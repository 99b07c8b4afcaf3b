"""Merge keys of every width: a generator finds what examples miss (a three-column key once crashed).

The property test drives `split_null_keys` with random tables and keys of width 1 to 4; the load
tests merge through the whole engine with composite keys and check the target row by row.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etl_platform.engine.load import split_null_keys
from etl_platform.engine.runner import run_pipeline
from tests.conftest import environment_for, pipeline, rows, write_csv

KEY_NAMES = ["k1", "k2", "k3", "k4"]


@st.composite
def keyed_tables(draw: st.DrawFn) -> tuple[pa.Table, list[str]]:
    width = draw(st.integers(1, 4))
    count = draw(st.integers(0, 30))
    cell = st.one_of(st.none(), st.integers(-3, 3))
    columns = {name: draw(st.lists(cell, min_size=count, max_size=count)) for name in KEY_NAMES[:width]}
    columns["v"] = list(range(count))
    return pa.table({name: pa.array(values, pa.int64()) for name, values in columns.items()}), KEY_NAMES[:width]


@settings(max_examples=200, deadline=None)
@given(keyed_tables())
def test_rows_with_a_null_key_column_are_set_aside_and_every_row_is_accounted_for(case) -> None:
    table, key = case
    kept, rejected = split_null_keys(table, key)
    expected_rejects = [row for row in table.to_pylist() if any(row[c] is None for c in key)]
    assert kept.to_pylist() == [row for row in table.to_pylist() if all(row[c] is not None for c in key)]
    if not expected_rejects:
        assert rejected is None
        return
    assert rejected.rows.to_pylist() == expected_rejects
    assert len(kept) + len(rejected.rows) == len(table)
    first_null = [next(c for c in key if row[c] is None) for row in expected_rejects]
    assert rejected.reasons == [f"primary key column '{c}' is null; a merge needs every key column" for c in first_null]


def merge_spec(width: int):
    key = KEY_NAMES[:width]
    casts = {name: "int" for name in [*key, "v"]}
    destination = {"dataset": "analytics.keyed", "write": "merge", "primary_key": key}
    return pipeline(source={"type": "csv", "path": "keyed.csv"}, transforms=[{"cast": casts}], destination=destination)


def keyed_csv(landing: Path, width: int, records: list[tuple]) -> None:
    header = ",".join([*KEY_NAMES[:width], "v"])
    lines = [",".join("" if value is None else str(value) for value in record) for record in records]
    write_csv(landing, "keyed.csv", "\n".join([header, *lines]) + "\n")


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_a_merge_on_a_composite_key_of_any_width_upserts_by_the_whole_key(duckdb_url: str, landing: Path, width: int) -> None:
    def record(key_base: int, v: int) -> tuple:
        return (*[key_base + i for i in range(width)], v)

    environment = environment_for(duckdb_url, landing)
    keyed_csv(landing, width, [record(1, 10), record(2, 20), (*[None] * width, 99)])
    first = run_pipeline(merge_spec(width), environment)
    assert (first.rows_published, first.rows_quarantined) == (2, 1)
    # The same key again (updated), a new key, and a key that differs from key 1 in its last column only.
    differs_last = (*record(1, 0)[: width - 1], 1 + width + 100, 40)
    keyed_csv(landing, width, [record(1, 11), record(3, 30), differs_last])
    run_pipeline(merge_spec(width), environment)
    published = rows(duckdb_url, f"SELECT {', '.join(KEY_NAMES[:width])}, v FROM analytics.keyed ORDER BY v")
    assert [tuple(r.values()) for r in published] == sorted(
        [record(1, 11), record(2, 20), record(3, 30), differs_last], key=lambda r: r[-1]
    )


def test_a_three_column_merge_key_on_both_warehouses(warehouse_url: str, landing: Path) -> None:
    environment = environment_for(warehouse_url, landing)
    keyed_csv(landing, 3, [(1, 1, 1, 1), (1, 1, 2, 2), (1, None, 1, 3)])
    report = run_pipeline(merge_spec(3), environment)
    assert (report.rows_read, report.rows_published, report.rows_quarantined) == (3, 2, 1)
    keyed_csv(landing, 3, [(1, 1, 2, 20)])
    run_pipeline(merge_spec(3), environment)
    assert rows(warehouse_url, "SELECT k3, v FROM analytics.keyed ORDER BY k3") == [{"k3": 1, "v": 1}, {"k3": 2, "v": 20}]
