"""SQL sources with a cursor: a high-water mark in the warehouse, a look-back for late commits, merge for overlap."""

from __future__ import annotations

import json

import psycopg
import pytest

from etl_platform.engine.options import RunOptions
from etl_platform.engine.runner import run_pipeline
from etl_platform.errors import SpecError
from etl_platform.warehouse import open_warehouse
from etl_platform.warehouse.metadata import ensure_metadata
from tests.conftest import environment_for, pipeline, rows


def source_db(url: str, sql: str) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(sql)


def warehouse_sql(url: str, *statements: str) -> None:
    warehouse = open_warehouse(url)
    try:
        for statement in statements:
            warehouse.execute(statement)
    finally:
        warehouse.close()


def events_pipeline(url_variable: str | None, lookback: str | int = "30m"):
    source = {"type": "sql", "table": "src.events", "incremental": {"cursor": "updated_at", "lookback": lookback}}
    if url_variable:
        source["url"] = "${" + url_variable + "}"
    return pipeline(
        id="events", source=source, destination={"dataset": "analytics.events", "write": "merge", "primary_key": ["id"]}
    )


def test_late_rows_below_the_mark_are_caught_by_the_lookback_and_merge_removes_the_overlap(
    duckdb_url: str, postgresql_url: str, landing, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENTS_DB_URL", postgresql_url)
    source_db(
        postgresql_url,
        "CREATE SCHEMA src; CREATE TABLE src.events (id int PRIMARY KEY, updated_at timestamptz, v text);"
        "INSERT INTO src.events VALUES (1, '2026-11-22 10:00+00', 'a'), (2, '2026-11-22 10:30+00', 'b')",
    )
    environment = environment_for(duckdb_url, landing)
    first = run_pipeline(events_pipeline("EVENTS_DB_URL"), environment)
    assert first.rows_published == 2
    saved = rows(duckdb_url, "SELECT position FROM _etl.source_checkpoint WHERE pipeline = 'events'")
    assert [json.loads(r["position"]) for r in saved] == [
        {"cursor_column": "updated_at", "high_water": {"kind": "timestamp", "value": "2026-11-22T10:30:00+00:00"}}
    ]

    # A transaction that started earlier commits now, with a cursor value below the mark; and new rows arrive.
    source_db(
        postgresql_url,
        "INSERT INTO src.events VALUES (3, '2026-11-22 10:20+00', 'late'), (4, '2026-11-22 11:00+00', 'new');"
        "UPDATE src.events SET v = 'a2', updated_at = '2026-11-22 11:05+00' WHERE id = 1",
    )
    second = run_pipeline(events_pipeline("EVENTS_DB_URL"), environment)
    # Read after 10:00 (the mark minus 30 minutes): 2 (again), 3 (late, 10:20), 4, and 1 (updated).
    assert second.rows_read == 4
    assert rows(duckdb_url, "SELECT id, v FROM analytics.events ORDER BY id") == [
        {"id": 1, "v": "a2"},
        {"id": 2, "v": "b"},
        {"id": 3, "v": "late"},
        {"id": 4, "v": "new"},
    ]
    third = run_pipeline(events_pipeline("EVENTS_DB_URL"), environment)  # a new process: the mark came from the warehouse
    assert third.rows_read == 2  # after 10:35 (11:05 minus 30 minutes): 11:00 and 11:05 only

    refreshed = run_pipeline(events_pipeline("EVENTS_DB_URL"), environment, RunOptions(full_refresh=True))
    assert refreshed.rows_read == 4 and refreshed.target_rows == 4


def test_a_numeric_cursor_on_the_warehouse_itself(warehouse_url: str, landing) -> None:
    warehouse_sql(
        warehouse_url,
        "CREATE SCHEMA src",
        "CREATE TABLE src.events (id integer, updated_at integer, v text)",
        "INSERT INTO src.events VALUES (1, 100, 'a'), (2, 200, 'b')",
    )
    environment = environment_for(warehouse_url, landing)
    spec = pipeline(
        id="events",
        source={"type": "sql", "table": "src.events", "incremental": {"cursor": "updated_at"}},
        destination={"dataset": "analytics.events", "write": "append"},
    )
    assert run_pipeline(spec, environment).rows_published == 2
    warehouse_sql(warehouse_url, "INSERT INTO src.events VALUES (3, 300, 'c')")
    assert run_pipeline(spec, environment).rows_published == 1
    assert rows(warehouse_url, "SELECT count(*) AS n FROM analytics.events") == [{"n": 3}]


def test_a_lookback_needs_merge() -> None:
    with pytest.raises(SpecError, match="an incremental source with `lookback` reads some rows twice: use write: merge"):
        pipeline(
            source={"type": "sql", "table": "t", "incremental": {"cursor": "ts", "lookback": "2h"}},
            destination={"dataset": "a.b", "write": "append"},
        )
    with pytest.raises(SpecError, match="lookback '2 hours' is not a duration such as"):
        pipeline(
            source={"type": "sql", "table": "t", "incremental": {"cursor": "ts", "lookback": "2 hours"}},
            destination={"dataset": "a.b", "write": "merge", "primary_key": ["id"]},
        )


def test_a_changed_cursor_column_starts_from_nothing(duckdb_url: str, landing) -> None:
    warehouse_sql(
        duckdb_url,
        "CREATE SCHEMA src",
        "CREATE TABLE src.events (id integer, seq integer, version integer)",
        "INSERT INTO src.events VALUES (1, 100, 5), (2, 200, 1)",
    )
    environment = environment_for(duckdb_url, landing)

    def spec(cursor: str):
        return pipeline(
            id="events",
            source={"type": "sql", "table": "src.events", "incremental": {"cursor": cursor}},
            destination={"dataset": "analytics.events", "write": "merge", "primary_key": ["id"]},
        )

    assert run_pipeline(spec("seq"), environment).rows_read == 2
    assert run_pipeline(spec("seq"), environment).rows_read == 0
    # The mark 200 belongs to `seq`: read by `version`, every row is new.
    assert run_pipeline(spec("version"), environment).rows_read == 2


def test_a_warehouse_from_before_the_checkpoint_protocol_keeps_its_cursor_marks(warehouse_url: str, landing) -> None:
    """Upgrade path: marks in `_etl.cursor_state` move to `_etl.source_checkpoint` once, and loads go on from them."""
    warehouse_sql(
        warehouse_url,
        "CREATE SCHEMA src",
        "CREATE TABLE src.events (id integer, updated_at integer, v text)",
        "INSERT INTO src.events VALUES (1, 100, 'a'), (2, 200, 'b'), (3, 300, 'c')",
        "CREATE SCHEMA _etl",
        "CREATE TABLE _etl.cursor_state (pipeline text PRIMARY KEY, cursor_column text, high_water text, run_id text, "
        "updated_at timestamp)",
        """INSERT INTO _etl.cursor_state VALUES ('events', 'updated_at', '{"kind": "int", "value": 200}', 'r1', NULL)""",
    )
    spec = pipeline(
        id="events",
        source={"type": "sql", "table": "src.events", "incremental": {"cursor": "updated_at"}},
        destination={"dataset": "analytics.events", "write": "append"},
    )
    report = run_pipeline(spec, environment_for(warehouse_url, landing))
    assert report.rows_read == 1  # only past the old mark
    assert rows(warehouse_url, "SELECT id FROM analytics.events") == [{"id": 3}]
    saved = rows(warehouse_url, "SELECT position FROM _etl.source_checkpoint WHERE pipeline = 'events'")
    assert [json.loads(r["position"]) for r in saved] == [
        {"cursor_column": "updated_at", "high_water": {"kind": "int", "value": 300}}
    ]
    warehouse = open_warehouse(warehouse_url)
    try:
        assert warehouse.columns("_etl", "cursor_state") is None  # moved, so the upgrade runs once
        ensure_metadata(warehouse)
    finally:
        warehouse.close()
