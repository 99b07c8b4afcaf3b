"""Every source kind, read for real and published to DuckDB (and PostgreSQL where it matters)."""

from __future__ import annotations

import bz2
import gzip
import json
import sqlite3
import zipfile
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from etl_platform.engine.runner import run_pipeline
from etl_platform.errors import SourceError
from etl_platform.sources.csv import CsvFileSource
from etl_platform.stores import AllowedRoots, FileLocation, LocalStore
from tests.conftest import environment_for, pipeline, rows, write_csv

CSV = "id,name,amount\n1,Anna,10.5\n2,Ben,20\n"


def load(url: str, landing: Path, source: dict, transforms: list | None = None) -> list[dict]:
    spec = pipeline(source=source, transforms=transforms or [], destination={"dataset": "raw.items", "write": "replace"})
    run_pipeline(spec, environment_for(url, landing))
    return rows(url, "SELECT * FROM raw.items ORDER BY 1")


def test_csv_reads_every_column_as_text(warehouse_url: str, landing: Path) -> None:
    write_csv(landing, "input.csv", CSV)
    assert load(warehouse_url, landing, {"type": "csv", "path": "input.csv"}) == [
        {"id": "1", "name": "Anna", "amount": "10.5"},
        {"id": "2", "name": "Ben", "amount": "20"},
    ]


def test_csv_delimiter_quoting_and_encoding(warehouse_url: str, landing: Path) -> None:
    (landing / "input.csv").write_bytes("id;name\n1;'Müller; Anna'\n2;'Zoë'\n".encode("latin-1"))
    source = {"type": "csv", "path": "input.csv", "delimiter": ";", "quote_char": "'", "encoding": "latin-1"}
    assert load(warehouse_url, landing, source) == [{"id": "1", "name": "Müller; Anna"}, {"id": "2", "name": "Zoë"}]


def test_csv_without_header_takes_named_columns(warehouse_url: str, landing: Path) -> None:
    write_csv(landing, "input.csv", "1,Anna\n2,Ben\n")
    source = {"type": "csv", "path": "input.csv", "header": False, "columns": ["id", "name"]}
    assert load(warehouse_url, landing, source) == [{"id": "1", "name": "Anna"}, {"id": "2", "name": "Ben"}]


@pytest.mark.parametrize("suffix", ["gz", "bz2", "zip"])
def test_compressed_csv(duckdb_url: str, landing: Path, suffix: str) -> None:
    path = landing / f"input.csv.{suffix}"
    if suffix == "gz":
        path.write_bytes(gzip.compress(CSV.encode()))
    elif suffix == "bz2":
        path.write_bytes(bz2.compress(CSV.encode()))
    else:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("input.csv", CSV)
    assert len(load(duckdb_url, landing, {"type": "csv", "path": f"input.csv.{suffix}"})) == 2


def test_glob_reads_files_in_order_with_provenance(duckdb_url: str, landing: Path) -> None:
    write_csv(landing, "day/2024-01-02.csv", "id\n3\n")
    write_csv(landing, "day/2024-01-01.csv", "id\n1\n2\n")
    store = LocalStore(landing)
    source = CsvFileSource(
        pipeline(source={"type": "csv", "path": "day/*.csv"}).source,
        FileLocation(store, "day/", "*.csv", AllowedRoots.of(landing)).files(),
        store,
    )
    tables = [c.table for c in source.read(1000) if len(c.table)]
    assert [t["id"].to_pylist() for t in tables] == [["1", "2"], ["3"]]
    assert tables[0]["_etl_source_line"].to_pylist() == [2, 3]
    assert tables[1]["_etl_source_file"].cast(pa.string()).to_pylist() == [str(landing / "day/2024-01-02.csv")]


def test_chunks_are_bounded_by_chunk_rows(landing: Path) -> None:
    write_csv(landing, "input.csv", "id\n" + "".join(f"{i}\n" for i in range(5000)))
    spec = pipeline(source={"type": "csv", "path": "input.csv"})
    store = LocalStore(landing)
    source = CsvFileSource(spec.source, FileLocation(store, "", "input.csv", AllowedRoots.of(landing)).files(), store)
    sizes = [len(c.table) for c in source.read(1000)]
    assert max(sizes) == 1000 and sum(sizes) == 5000


def test_json_array_and_json_lines(warehouse_url: str, landing: Path) -> None:
    records = [{"id": 1, "tags": ["a"], "price": 9.5, "ok": True}, {"id": 2, "extra": "new", "price": "n/a"}]
    (landing / "items.json").write_text(json.dumps(records))
    expected = [
        {"id": "1", "tags": '["a"]', "price": "9.5", "ok": "true", "extra": None},
        {"id": "2", "tags": None, "price": "n/a", "ok": None, "extra": "new"},
    ]
    assert load(warehouse_url, landing, {"type": "json", "path": "items.json"}) == expected
    (landing / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert load(warehouse_url, landing, {"type": "jsonl", "path": "items.jsonl"}) == expected


def test_json_lines_bad_line_is_quarantined_with_its_line(duckdb_url: str, landing: Path) -> None:
    (landing / "items.jsonl").write_text('{"id": 1}\n{"id": \n{"id": 3}\n')
    spec = pipeline(source={"type": "jsonl", "path": "items.jsonl"}, destination={"dataset": "raw.items", "write": "replace"})
    report = run_pipeline(spec, environment_for(duckdb_url, landing))
    assert (report.rows_read, report.rows_published, report.rows_quarantined) == (3, 2, 1)
    (bad,) = rows(duckdb_url, "SELECT rule, source_line, value FROM _etl.quarantine")
    assert bad == {"rule": "malformed_line", "source_line": 2, "value": '{"id": '}


def test_parquet_keeps_its_types(warehouse_url: str, landing: Path) -> None:
    pq.write_table(pa.table({"id": pa.array([1, 2], pa.int32()), "price": [1.5, 2.5]}), landing / "p.parquet")
    assert load(warehouse_url, landing, {"type": "parquet", "path": "*.parquet"}) == [
        {"id": 1, "price": 1.5},
        {"id": 2, "price": 2.5},
    ]


def test_sql_source_from_postgres_url_in_env(
    postgresql_url: str, duckdb_url: str, landing: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    with psycopg.connect(postgresql_url, autocommit=True) as connection:
        connection.execute("CREATE TABLE people (id int primary key, name text, born date)")
        connection.execute("INSERT INTO people VALUES (1, 'Anna', '1990-01-02'), (2, 'Ben', NULL)")
    monkeypatch.setenv("SOURCE_DB_URL", postgresql_url)
    result = load(duckdb_url, landing, {"type": "sql", "url": "${SOURCE_DB_URL}", "table": "people"})
    assert [r["name"] for r in result] == ["Anna", "Ben"]
    assert str(result[0]["born"]) == "1990-01-02"


def test_sql_source_from_sqlite_and_duckdb_files(duckdb_url: str, landing: Path, tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "src.sqlite") as connection:
        connection.execute("CREATE TABLE t (id INTEGER, v TEXT)")
        connection.execute("INSERT INTO t VALUES (1, 'a'), (2, 'b')")
    source = {"type": "sql", "url": f"sqlite:///{tmp_path / 'src.sqlite'}", "query": "SELECT id, v FROM t WHERE id > 1"}
    assert load(duckdb_url, landing, source) == [{"id": 2, "v": "b"}]
    with duckdb.connect(str(tmp_path / "src.duckdb")) as connection:
        connection.execute("CREATE TABLE t AS SELECT 7 AS id, 'x' AS v")
    assert load(duckdb_url, landing, {"type": "sql", "url": f"duckdb:///{tmp_path / 'src.duckdb'}", "table": "t"}) == [
        {"id": 7, "v": "x"}
    ]


def test_missing_files_and_unreachable_database_are_clear(duckdb_url: str, landing: Path) -> None:
    with pytest.raises(SourceError, match=r"no input files match .*landing/nothing/\*.csv; .*ETL_LANDING_DIR"):
        load(duckdb_url, landing, {"type": "csv", "path": "nothing/*.csv"})
    with pytest.raises(SourceError, match=r"cannot read: .*check the url and that the database is up"):
        load(duckdb_url, landing, {"type": "sql", "url": "postgresql://postgres@127.0.0.1:1/none", "table": "t"})
