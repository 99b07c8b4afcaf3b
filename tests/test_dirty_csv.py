"""Dirty CSV files (issue 21, items 3 to 6): nothing vanishes, every row keeps its line.

An unbalanced quote is quarantined by the line where it opened and the rest of the file loads; a
value no warehouse can store is a bad row, not a failed load; a long valid field loads; and the
quarantine's `source_line` is the line an editor shows.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from etl_platform.engine.runner import run_pipeline
from etl_platform.errors import DestinationError, SourceError
from etl_platform.warehouse import open_warehouse
from tests.conftest import environment_for, pipeline, rows

REPLACE = {"dataset": "analytics.target", "write": "replace"}


def data_lines(count: int) -> list[str]:
    """`id,name,amount` rows, the first data row on line 2."""
    return ["id,name,amount"] + [f"{i},name {i},{i}.5" for i in range(2, count + 2)]


def write_lines(landing: Path, lines: list[str]) -> None:
    (landing / "input.csv").write_bytes(("\n".join(lines) + "\n").encode())


def quarantined(url: str) -> list[dict]:
    return rows(url, "SELECT rule, column_name, value, source_line, reason FROM _etl.quarantine ORDER BY source_line")


def published_ids(url: str) -> list[int]:
    return [int(r["id"]) for r in rows(url, "SELECT id FROM analytics.target")]


def test_a_quote_that_never_closes_sets_its_line_aside_and_the_rest_loads(warehouse_url: str, landing: Path) -> None:
    lines = data_lines(1000)
    lines[69] = '70,"name 70,70.5'  # line 70: the quote opens and never closes
    write_lines(landing, lines)
    report = run_pipeline(pipeline(destination=REPLACE), environment_for(warehouse_url, landing))
    assert report.rows_read == 1000
    assert report.rows_published == 999 and report.rows_quarantined == 1
    assert sorted(published_ids(warehouse_url)) == [i for i in range(2, 1002) if i != 70]
    (bad,) = quarantined(warehouse_url)
    assert bad["rule"] == "malformed_line" and bad["source_line"] == 70 and bad["value"] == '70,"name 70,70.5'
    assert "unbalanced quote" in bad["reason"] and "never closes" in bad["reason"]


def test_a_stray_quote_closed_by_a_later_quoted_field_loses_no_line(duckdb_url: str, landing: Path) -> None:
    lines = data_lines(1000)
    lines[69] = '70,"name 70,70.5'  # opens a quote ...
    lines[569] = '570,"name 570",570.5'  # ... that this valid quoted field would close, 500 lines later
    write_lines(landing, lines)
    report = run_pipeline(pipeline(destination=REPLACE), environment_for(duckdb_url, landing))
    assert (report.rows_read, report.rows_published, report.rows_quarantined) == (1000, 999, 1)
    assert [r["source_line"] for r in quarantined(duckdb_url)] == [70]
    assert "more than `source.max_record_lines` (100)" in quarantined(duckdb_url)[0]["reason"]


def test_an_unbalanced_quote_fails_a_strict_load_naming_file_and_line(duckdb_url: str, landing: Path) -> None:
    lines = data_lines(200)
    lines[69] = '70,"name 70,70.5'
    write_lines(landing, lines)
    strict = pipeline(source={"type": "csv", "path": "input.csv", "on_bad_line": "fail"}, destination=REPLACE)
    with pytest.raises(SourceError, match=r"input.csv:70: malformed line: unbalanced quote"):
        run_pipeline(strict, environment_for(duckdb_url, landing))


def test_a_nul_byte_quarantines_its_row_and_the_rest_loads(any_warehouse_url: str, landing: Path) -> None:
    (landing / "input.csv").write_bytes(b"id,name\n1,Anna\n2,B\x00en\n3,Carl\n")
    report = run_pipeline(pipeline(destination=REPLACE), environment_for(any_warehouse_url, landing))
    assert (report.rows_read, report.rows_published, report.rows_quarantined) == (3, 2, 1)
    assert sorted(published_ids(any_warehouse_url)) == [1, 3]
    (bad,) = quarantined(any_warehouse_url)
    assert (bad["rule"], bad["column_name"], bad["source_line"], bad["value"]) == ("unstorable_value", "name", 3, "B\\x00en")
    assert "NUL byte" in bad["reason"]


def test_a_nul_byte_in_a_malformed_line_reaches_the_quarantine(postgresql_url: str, landing: Path) -> None:
    (landing / "input.csv").write_bytes(b"id,name\n1,Anna\n2,B\x00en,extra\n")
    run_pipeline(pipeline(destination=REPLACE), environment_for(postgresql_url, landing))
    assert [(r["source_line"], r["value"]) for r in quarantined(postgresql_url)] == [(3, "2,B\\x00en,extra")]


def test_a_valid_10_mb_field_loads(duckdb_url: str, landing: Path) -> None:
    long = "x" * (10 << 20)
    write_lines(landing, ["id,name,amount", "1,a,1", f'2,"{long}",2', "3,c,3"])
    report = run_pipeline(pipeline(destination=REPLACE), environment_for(duckdb_url, landing))
    assert (report.rows_read, report.rows_published) == (3, 3)
    (row,) = rows(duckdb_url, "SELECT length(name) AS n FROM analytics.target WHERE id = '2'")
    assert row["n"] == len(long)


def test_a_field_past_the_record_limit_names_file_line_and_setting(duckdb_url: str, landing: Path) -> None:
    write_lines(landing, ["id,name,amount", "1,a,1", "2,b,2", f"3,{'x' * (20 << 20)},3"])
    limited = pipeline(source={"type": "csv", "path": "input.csv", "max_record_mb": 8}, destination=REPLACE)
    with pytest.raises(SourceError, match=r"input.csv:4: a record .* longer than `source.max_record_mb` \(8 MB\); raise it"):
        run_pipeline(limited, environment_for(duckdb_url, landing))


def test_source_line_is_the_line_an_editor_shows(warehouse_url: str, landing: Path) -> None:
    lines = data_lines(400)
    lines[100:100] = ["", "", ""]  # three blank lines: what was line 101 is now 104
    lines[199] = "200,bad,ten"  # physical line 200 ...
    lines[250] = '251,"two\nlines",251.5'  # a quoted newline: every later line moves down by one
    lines[400] = "401,bad,eleven"  # ... and line 404 (403 without the quoted newline)
    write_lines(landing, ["", "", *lines])  # two blank lines before the header, too
    cast = [{"cast": {"id": "int", "amount": "float"}}]
    report = run_pipeline(pipeline(transforms=cast, destination=REPLACE), environment_for(warehouse_url, landing))
    assert [(r["source_line"], r["value"]) for r in quarantined(warehouse_url)] == [(202, "ten"), (404, "eleven")]
    assert report.rows_read == 400 and report.rows_published == 398


def test_a_value_postgresql_refuses_is_a_data_error_that_is_not_retried(postgresql_url: str) -> None:
    warehouse = open_warehouse(postgresql_url)
    try:
        warehouse.execute("CREATE TABLE names (name text)")
        with pytest.raises(DestinationError, match=r"PostgreSQL refused a value for names: .*0x00"):
            warehouse.bulk_insert("names", pa.table({"name": ["B\x00en"]}))
    finally:
        warehouse.close()
