"""Edge cases a code review found: each test pins down one that once went wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from etl_platform.engine.replay import QuarantineSelection, replay
from etl_platform.engine.runner import run_pipeline
from etl_platform.errors import DestinationError
from etl_platform.quality.audit import QualityGateFailed
from tests.conftest import environment_for, pipeline, rows, write_csv

CASTS = [{"cast": {"id": "int", "amount": "float"}}]


def test_replay_keeps_each_row_its_own_record_when_lines_repeat_across_files(duckdb_url: str, landing: Path) -> None:
    write_csv(landing, "day/1.csv", "id,amount\n1,10\n2,oops\n")
    write_csv(landing, "day/2.csv", "id,amount\n3,30\n4,bad\n")
    spec = pipeline(source={"type": "csv", "path": "day/*.csv"}, transforms=CASTS)
    environment = environment_for(duckdb_url, landing)
    run_pipeline(spec, environment)
    replay(spec, environment, QuarantineSelection())  # both fail again, from one chunk with line 3 twice
    records = sorted(json.loads(r["record"])["id"] for r in rows(duckdb_url, "SELECT record FROM _etl.quarantine"))
    assert records == ["2", "4"]


def test_question_marks_in_users_sql_reach_postgres_unchanged(postgresql_url: str, landing: Path) -> None:
    write_csv(landing, "input.csv", "id,amount\n2,10\n")
    rule = {"rule": "CustomQuery", "name": "no_id_two", "sql": "SELECT * FROM {dataset} WHERE CAST(id AS text) ~ '^2?$'"}
    with pytest.raises(QualityGateFailed, match="no_id_two"):
        run_pipeline(pipeline(transforms=CASTS, quality={"rules": [rule]}), environment_for(postgresql_url, landing))


def test_evolve_keeps_working_after_the_drift_it_absorbed(warehouse_url: str, landing: Path) -> None:
    environment = environment_for(warehouse_url, landing)
    rewrites = {"dataset": "analytics.target", "write": "append", "on_changed_file": "append"}
    spec = pipeline(transforms=[{"cast": {"id": "int"}}], schema={"on_drift": "evolve"}, destination=rewrites)
    for text in ("id,a,b\n1,x,y\n", "id,a,c\n2,x,z\n", "id,a,c\n3,x,w\n"):
        write_csv(landing, "input.csv", text)
        run_pipeline(spec, environment)
    assert rows(warehouse_url, "SELECT id, b, c FROM analytics.target ORDER BY id") == [
        {"id": 1, "b": "y", "c": None},
        {"id": 2, "b": None, "c": "z"},
        {"id": 3, "b": None, "c": "w"},
    ]


def test_file_destination_refuses_a_column_that_appears_late(duckdb_url: str, landing: Path) -> None:
    (landing / "items.jsonl").write_text(
        "".join(json.dumps({"id": i}) + "\n" for i in range(1000)) + '{"id": 1000, "extra": 1}\n'
    )
    destination = {"dataset": "lake.items", "format": "parquet", "write": "replace"}
    spec = pipeline(source={"type": "jsonl", "path": "items.jsonl"}, destination=destination, execution={"chunk_rows": 1000})
    with pytest.raises(DestinationError, match="column 'extra' first appears after the load started"):
        run_pipeline(spec, environment_for(duckdb_url, landing))


def test_an_empty_json_file_first_in_the_glob(warehouse_url: str, landing: Path) -> None:
    (landing / "a.jsonl").write_text("")
    (landing / "b.jsonl").write_text('{"id": "1"}\n')
    report = run_pipeline(pipeline(source={"type": "jsonl", "path": "*.jsonl"}), environment_for(warehouse_url, landing))
    assert report.rows_published == 1 and rows(warehouse_url, "SELECT id FROM analytics.target") == [{"id": "1"}]
    (landing / "c.jsonl").write_text("\n")
    empty = run_pipeline(pipeline(source={"type": "jsonl", "path": "*.jsonl"}), environment_for(warehouse_url, landing))
    assert empty.skipped_reason == "the input held no rows"
    # b.jsonl emptied holds the bytes a.jsonl held (none), which the ledger has: nothing to read.
    (landing / "b.jsonl").write_text("")
    again = run_pipeline(pipeline(source={"type": "jsonl", "path": "*.jsonl"}), environment_for(warehouse_url, landing))
    assert again.skipped_reason.startswith("every new or changed file holds content already appended")


def test_two_merge_tables_with_the_same_key_name_in_one_schema(duckdb_url: str, landing: Path) -> None:
    environment = environment_for(duckdb_url, landing)
    write_csv(landing, "input.csv", "id,amount\n1,10\n")
    for table in ("first", "second"):
        run_pipeline(pipeline(transforms=CASTS, destination={"dataset": f"analytics.{table}", "write": "replace"}), environment)
    for table in ("first", "second"):
        merge = {"dataset": f"analytics.{table}", "write": "merge", "primary_key": ["id"]}
        run_pipeline(pipeline(transforms=CASTS, destination=merge), environment)
    assert rows(duckdb_url, "SELECT count(*) AS n FROM analytics.second")[0]["n"] == 1


def test_rules_on_columns_of_the_wrong_type_fail_early_and_clearly(duckdb_url: str, landing: Path) -> None:
    from etl_platform.errors import TransformError

    write_csv(landing, "input.csv", "id,amount,at\n1,10,yesterday\n")
    environment = environment_for(duckdb_url, landing)
    fresh = {"rules": [{"field": "at", "rule": "Freshness", "max_age": "1d"}]}
    with pytest.raises(TransformError, match=r"needs a date or timestamp column; 'at' is string: add `cast: \{at: timestamp\}`"):
        run_pipeline(pipeline(quality=fresh), environment)
    missing = {"rules": [{"field": "nope", "rule": "Freshness", "max_age": "1d"}]}
    with pytest.raises(TransformError, match="checks column 'nope', which the data lacks"):
        run_pipeline(pipeline(quality=missing), environment)
    ranged = {"rules": [{"field": "amount", "rule": "Range", "args": [0, 5]}]}
    with pytest.raises(TransformError, match=r"a rule on 'amount' cannot check its values .* add a `cast` before the rule"):
        run_pipeline(pipeline(quality=ranged), environment)


def test_sql_source_keeps_declared_types_when_a_result_is_empty(postgresql_url: str, duckdb_url: str, landing: Path) -> None:
    import psycopg

    from etl_platform.warehouse import open_warehouse

    with psycopg.connect(postgresql_url, autocommit=True) as connection:
        connection.execute("CREATE TABLE sales (id int, amount numeric(12,2), day date)")
        connection.execute("INSERT INTO sales VALUES (1, 9.5, '2024-01-01'), (2, 1234567.25, NULL)")
    spec = pipeline(
        source={"type": "sql", "url": postgresql_url, "table": "sales"}, destination={"dataset": "raw.sales", "write": "replace"}
    )
    environment = environment_for(duckdb_url, landing)
    run_pipeline(spec, environment)

    def columns() -> dict:
        warehouse = open_warehouse(duckdb_url)
        try:
            return warehouse.columns("raw", "sales")
        finally:
            warehouse.close()

    before = columns()
    assert before == {"id": "INTEGER", "amount": "DECIMAL(12,2)", "day": "DATE"}
    with psycopg.connect(postgresql_url, autocommit=True) as connection:
        connection.execute("DELETE FROM sales")
    run_pipeline(spec, environment)
    assert columns() == before
