"""The auto-tuner: chunk size from past loads of the same pipeline, within bounds, recorded in the report."""

from __future__ import annotations

from pathlib import Path

from etl_platform.engine.runner import run_pipeline
from etl_platform.engine.tuner import DEFAULT_CHUNK_ROWS, MAX_CHUNK_ROWS, MIN_CHUNK_ROWS, TARGET_CHUNK_BYTES
from tests.conftest import environment_for, pipeline, rows, write_csv


def test_chunk_size_comes_from_the_bytes_per_row_of_past_loads(duckdb_url: str, landing: Path) -> None:
    environment = environment_for(duckdb_url, landing)
    spec = pipeline(source={"type": "csv", "path": "day*.csv"}, execution={"chunk_rows": "auto"})
    write_csv(landing, "day1.csv", "id,text\n" + "".join(f"{i},{'x' * 1000}\n" for i in range(5000)))
    first = run_pipeline(spec, environment)
    assert (first.chunk_rows, first.tuning) == (DEFAULT_CHUNK_ROWS, f"no past loads: the default {DEFAULT_CHUNK_ROWS:,} rows")
    write_csv(landing, "day2.csv", "id,text\n" + "".join(f"{i},{'y' * 1000}\n" for i in range(5000)))  # new content
    second = run_pipeline(spec, environment)
    per_row = first.bytes_read / first.rows_read
    expected = min(MAX_CHUNK_ROWS, max(MIN_CHUNK_ROWS, round(TARGET_CHUNK_BYTES / per_row / 1000) * 1000))
    assert second.chunk_rows == expected < DEFAULT_CHUNK_ROWS  # wide rows: smaller chunks
    assert f"{per_row:.0f} bytes per row over 1 loads" in second.tuning
    history = rows(duckdb_url, "SELECT chunk_rows, rows_read FROM _etl.load_history ORDER BY loaded_at")
    assert history == [{"chunk_rows": DEFAULT_CHUNK_ROWS, "rows_read": 5000}, {"chunk_rows": expected, "rows_read": 5000}]


def test_narrow_rows_are_capped_at_the_upper_bound(duckdb_url: str, landing: Path) -> None:
    environment = environment_for(duckdb_url, landing)
    spec = pipeline(source={"type": "csv", "path": "n*.csv"}, execution={"chunk_rows": "auto"})
    for day, name in enumerate(("n1.csv", "n2.csv")):  # each with its own content: the ledger skips a copy
        write_csv(landing, name, "id\n" + "".join(f"{i}\n" for i in range(day * 3000, day * 3000 + 3000)))
        report = run_pipeline(spec, environment)
    assert report.chunk_rows == MAX_CHUNK_ROWS  # 5 bytes a row would ask for millions
