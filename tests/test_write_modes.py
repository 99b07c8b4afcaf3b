"""Append, replace and merge on DuckDB, PostgreSQL, SQLite and MariaDB; file destinations; idempotence."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow.parquet as pq

from etl_platform.engine.options import RunOptions
from etl_platform.engine.runner import run_pipeline
from tests.conftest import environment_for, pipeline, rows, write_csv

CASTS = [{"cast": {"id": "int", "amount": "float"}}]


def orders(write: str, **destination) -> dict:
    return {"dataset": "analytics.orders", "write": write, **destination}


def test_append_never_loads_the_same_input_twice(every_warehouse_url: str, landing: Path) -> None:
    environment = environment_for(every_warehouse_url, landing)
    spec = pipeline(source={"type": "csv", "path": "day*.csv"}, transforms=CASTS, destination=orders("append"))
    write_csv(landing, "day1.csv", "id,amount\n1,10\n2,20\n")
    first = run_pipeline(spec, environment)
    again = run_pipeline(spec, environment)
    assert (first.rows_published, first.target_rows) == (2, 2)
    assert again.skipped_reason.startswith("no new or changed files") and again.rows_published == 0
    write_csv(landing, "day2.csv", "id,amount\n3,30\n")
    third = run_pipeline(spec, environment)
    # Only the new file is read: the processed-file state remembers day1.csv.
    assert (third.source_files, third.rows_published) == ([str(landing / "day2.csv")], 1)
    assert rows(every_warehouse_url, "SELECT count(*) AS n FROM analytics.orders")[0]["n"] == 3
    # A full refresh reads every file again into an emptied target; the ledger starts again too.
    refreshed = run_pipeline(spec, environment, RunOptions(full_refresh=True))
    assert refreshed.target_rows == 3
    # One ledger entry per file appended.
    assert rows(every_warehouse_url, "SELECT count(*) AS n FROM _etl.load_ledger")[0]["n"] == 2


def test_replace_swaps_content_and_schema(every_warehouse_url: str, landing: Path) -> None:
    environment = environment_for(every_warehouse_url, landing)
    write_csv(landing, "input.csv", "id,amount\n1,10\n2,20\n")
    run_pipeline(pipeline(transforms=CASTS, destination=orders("replace")), environment)
    write_csv(landing, "input.csv", "id,amount,note\n3,30,new\n")
    report = run_pipeline(pipeline(transforms=CASTS, destination=orders("replace")), environment)
    assert report.target_rows == 1
    published = rows(every_warehouse_url, "SELECT id, amount, note FROM analytics.orders")
    assert published == [{"id": 3, "amount": 30.0, "note": "new"}]


def test_merge_upserts_and_is_idempotent(every_warehouse_url: str, landing: Path) -> None:
    environment = environment_for(every_warehouse_url, landing)
    spec = pipeline(transforms=CASTS, destination=orders("merge", primary_key=["id"]))
    write_csv(landing, "input.csv", "id,amount\n1,10\n2,20\n2,21\n")
    run_pipeline(spec, environment)
    first = rows(every_warehouse_url, "SELECT id, amount FROM analytics.orders ORDER BY id")
    run_pipeline(spec, environment)
    assert rows(every_warehouse_url, "SELECT id, amount FROM analytics.orders ORDER BY id") == first
    # Within one load the last row of a key wins.
    assert first == [{"id": 1, "amount": 10.0}, {"id": 2, "amount": 21.0}]
    write_csv(landing, "input.csv", "id,amount\n2,99\n3,30\n")
    run_pipeline(spec, environment)
    assert rows(every_warehouse_url, "SELECT id, amount FROM analytics.orders ORDER BY id") == [
        {"id": 1, "amount": 10.0},
        {"id": 2, "amount": 99.0},
        {"id": 3, "amount": 30.0},
    ]


def test_merge_quarantines_rows_without_a_key(every_warehouse_url: str, landing: Path) -> None:
    write_csv(landing, "input.csv", "id,amount\n1,10\n,20\n")
    spec = pipeline(transforms=CASTS, destination=orders("merge", primary_key=["id"]))
    report = run_pipeline(spec, environment_for(every_warehouse_url, landing))
    assert (report.rows_published, report.rows_quarantined) == (1, 1)
    (row,) = rows(every_warehouse_url, "SELECT rule, column_name, source_line, reason FROM _etl.quarantine")
    assert row["rule"] == "primary_key_not_null" and row["column_name"] == "id" and row["source_line"] == 3


def test_rerun_replaces_rather_than_duplicates_quarantine(duckdb_url: str, landing: Path) -> None:
    write_csv(landing, "input.csv", "id,amount\n1,abc\n2,20\n")
    spec = pipeline(transforms=CASTS, destination=orders("replace"))
    run_pipeline(spec, environment_for(duckdb_url, landing))
    run_pipeline(spec, environment_for(duckdb_url, landing))
    assert rows(duckdb_url, "SELECT count(*) AS n FROM _etl.quarantine")[0]["n"] == 1


def test_file_destinations_parquet_partitioned_csv_gzip_and_jsonl(duckdb_url: str, landing: Path) -> None:
    environment = environment_for(duckdb_url, landing)
    lake = landing.parent / "lake"
    write_csv(landing, "input.csv", "id,amount,dt\n1,10,2024-01-01\n2,20,2024-01-02\n3,30,2024-01-02\n")
    parquet = {"dataset": "lake.orders", "format": "parquet", "partition_by": ["dt"], "write": "replace"}
    run_pipeline(pipeline(transforms=CASTS, destination=parquet), environment)
    assert sorted(p.name for p in (lake / "lake/orders").iterdir()) == ["dt=2024-01-01", "dt=2024-01-02"]
    assert pq.read_table(lake / "lake/orders").num_rows == 3

    csv_gz = {"dataset": "exports.orders", "format": "csv", "compression": "gzip", "path": "exports/orders", "write": "replace"}
    run_pipeline(pipeline(transforms=CASTS, destination=csv_gz), environment)
    (part,) = (lake / "exports/orders").iterdir()
    assert part.name == "part-0.csv.gz"
    assert gzip.decompress(part.read_bytes()).decode().splitlines()[0] == '"id","amount","dt"'

    jsonl = {"dataset": "exports.feed", "format": "jsonl", "write": "append"}
    spec = pipeline(id="feed", transforms=CASTS, destination=jsonl)
    run_pipeline(spec, environment)
    run_pipeline(spec, environment, RunOptions(full_refresh=True))  # the same part file again, no duplicate rows
    parts = list((lake / "exports/feed").iterdir())
    assert len(parts) == 1
    assert [json.loads(line)["id"] for line in parts[0].read_text().splitlines()] == [1, 2, 3]
    assert not list(lake.glob("**/.*staging*"))


def test_partitions_by_several_columns_with_nan_null_and_part_in_values(duckdb_url: str, landing: Path) -> None:
    write_csv(landing, "input.csv", "id,amount,region,dt\n1,1,part-east,2024-01-01\n2,NaN,west,2024-01-01\n3,NaN,,2024-01-02\n")
    casts = [{"cast": {"id": "int", "amount": "float"}}]
    destination = {"dataset": "lake.parts", "format": "csv", "partition_by": ["amount", "region", "dt"], "write": "append"}
    report = run_pipeline(pipeline(id="parts", transforms=casts, destination=destination), environment_for(duckdb_url, landing))
    assert report.rows_published == 3
    lake = landing.parent / "lake" / "lake" / "parts"
    files = sorted(p.relative_to(lake).as_posix() for p in lake.rglob("*.csv"))
    assert [f.rpartition("/")[0] for f in files] == [
        "amount=1/region=part-east/dt=2024-01-01",
        "amount=nan/region=__HIVE_DEFAULT_PARTITION__/dt=2024-01-02",
        "amount=nan/region=west/dt=2024-01-01",
    ]
    assert all(f.rpartition("/")[2].startswith("part-") and f.count("part-") == 1 + ("part-east" in f) for f in files)
    assert sum(len(p.read_text().splitlines()) - 1 for p in lake.rglob("*.csv")) == 3
