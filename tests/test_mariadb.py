"""MariaDB as a SQL source (table, query, incremental cursor, read-only session) and as a warehouse
(blocking checks, user SQL on prefixed databases), against the machine's real MariaDB on port 3306.

The write modes themselves run on MariaDB in tests/test_write_modes.py, kills in tests/test_crash_safety.py.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from etl_platform.engine.runner import run_pipeline
from etl_platform.errors import SourceError, WarehouseUnavailable
from etl_platform.quality.audit import QualityGateFailed
from etl_platform.sources.sql import SqlQuerySource
from etl_platform.spec.sources import SqlSource
from etl_platform.warehouse import open_warehouse
from tests.conftest import MARIADB_ADMIN, REPO, environment_for, pipeline, rows, write_csv


@pytest.fixture
def source_database() -> Iterator[str]:
    """A new MariaDB database holding `events`, dropped after the test."""
    name = f"etl_src_{uuid.uuid4().hex[:10]}"
    source_sql(
        None,
        f"CREATE DATABASE {name}",
        f"CREATE TABLE {name}.events (id int PRIMARY KEY, updated_at datetime(6), v varchar(20), amount decimal(10,2))",
        f"INSERT INTO {name}.events VALUES (1, '2026-11-22 10:00', 'a', 1.50), (2, '2026-11-22 10:30', 'b', NULL)",
    )
    yield name
    source_sql(None, f"DROP DATABASE IF EXISTS {name}")


def source_sql(database: str | None, *statements: str) -> list[tuple]:
    with pymysql.connect(**MARIADB_ADMIN, database=database, autocommit=True) as connection, connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
        return list(cursor.fetchall())


def events_pipeline(**source) -> object:
    return pipeline(
        id="events",
        source={"type": "sql", "url": "${EVENTS_DB_URL}", **source},
        destination={"dataset": "analytics.events", "write": "merge", "primary_key": ["id"]},
    )


def test_a_table_is_read_incrementally_across_runs_into_a_mariadb_warehouse(
    mariadb_url: str, source_database: str, landing: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENTS_DB_URL", f"mysql://root@127.0.0.1:3306/{source_database}")
    spec = events_pipeline(table="events", incremental={"cursor": "updated_at"})
    environment = environment_for(mariadb_url, landing)
    assert run_pipeline(spec, environment).rows_published == 2
    (saved,) = rows(mariadb_url, "SELECT position FROM _etl.source_checkpoint WHERE pipeline = 'events'")
    assert json.loads(saved["position"])["high_water"]["value"].startswith("2026-11-22T10:30:00")

    source_sql(
        source_database,
        "INSERT INTO events VALUES (3, '2026-11-22 11:00', 'c', 3.25)",
        "UPDATE events SET v = 'a2', updated_at = '2026-11-22 11:05' WHERE id = 1",
    )
    second = run_pipeline(spec, environment)  # only the rows past the saved mark
    assert (second.rows_read, second.target_rows) == (2, 3)
    assert run_pipeline(spec, environment).rows_read == 0
    published = rows(mariadb_url, "SELECT id, v, amount FROM analytics.events ORDER BY id")
    source = source_sql(source_database, "SELECT id, v, amount FROM events ORDER BY id")
    assert [tuple(r.values()) for r in published] == source


def test_a_query_is_read_and_replaces_the_target(
    mariadb_url: str, source_database: str, landing: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENTS_DB_URL", f"mariadb://root@127.0.0.1:3306/{source_database}")
    spec = pipeline(
        id="priced",
        source={"type": "sql", "url": "${EVENTS_DB_URL}", "query": "SELECT id, amount FROM events WHERE amount IS NOT NULL"},
        destination={"dataset": "analytics.priced", "write": "replace"},
    )
    report = run_pipeline(spec, environment_for(mariadb_url, landing))
    assert (report.rows_published, report.target_rows) == (1, 1)
    assert [r["id"] for r in rows(mariadb_url, "SELECT id FROM analytics.priced")] == [1]


def test_the_source_session_cannot_write(source_database: str) -> None:
    """Defence in depth behind the spec's one-SELECT validation (docs/security.md): the session is read-only."""
    url = f"mysql://root@127.0.0.1:3306/{source_database}"
    source = SqlQuerySource(SqlSource(type="sql", url=url, table="events"), warehouse=None, secrets={})
    source.query = "DELETE FROM events"
    with pytest.raises(SourceError, match="READ ONLY"):
        list(source.read(100))
    assert source_sql(source_database, "SELECT count(*) FROM events") == [(2,)]


def test_a_failing_blocking_check_publishes_nothing(mariadb_url: str, landing: Path) -> None:
    casts = [{"cast": {"id": "int", "amount": "float"}}]
    check = {"rule": "CustomQuery", "name": "no_negative", "sql": "SELECT * FROM {dataset} WHERE amount < 0"}
    spec = pipeline(
        transforms=casts,
        quality={"rules": [check]},
        destination={"dataset": "analytics.t", "write": "merge", "primary_key": ["id"]},
    )
    environment = environment_for(mariadb_url, landing)
    write_csv(landing, "input.csv", "id,amount\n1,10\n2,20\n")
    run_pipeline(spec, environment)
    write_csv(landing, "input.csv", "id,amount\n2,-5\n3,30\n")
    with pytest.raises(QualityGateFailed, match="no_negative"):
        run_pipeline(spec, environment)
    assert rows(mariadb_url, "SELECT id, amount FROM analytics.t ORDER BY id") == [
        {"id": 1, "amount": 10.0},
        {"id": 2, "amount": 20.0},
    ]
    assert rows(mariadb_url, "SELECT count(*) AS n FROM _etl.load_history")[0]["n"] == 1


def test_user_sql_must_be_one_select_and_names_schemas_not_databases(mariadb_url: str, landing: Path) -> None:
    write_csv(landing, "input.csv", "id,amount\n1,10\n")
    run_pipeline(pipeline(destination={"dataset": "analytics.t", "write": "replace"}), environment_for(mariadb_url, landing))
    warehouse = open_warehouse(mariadb_url)
    try:
        with warehouse.read_only() as read:
            assert read("SELECT count(*) AS n FROM analytics.t").to_pylist() == [{"n": 1}]
            with pytest.raises(ValueError, match="only one SELECT"):
                read("DROP TABLE analytics.t")
            with pytest.raises(ValueError, match="only one SELECT"):
                read("SELECT 1; DELETE FROM analytics.t")
    finally:
        warehouse.close()
    assert warehouse.prefix and rows(mariadb_url, "SELECT count(*) AS n FROM analytics.t") == [{"n": 1}]


def test_an_unknown_database_and_a_wrong_password_are_clear_permanent_errors() -> None:
    with pytest.raises(WarehouseUnavailable, match=r"Unknown database 'nosuchdb_etl'.*create the database") as unknown:
        open_warehouse("mysql://root@127.0.0.1:3306/nosuchdb_etl")
    with pytest.raises(WarehouseUnavailable, match=r"root:\*\*\*@127.0.0.1.*check the user and password") as denied:
        open_warehouse("mysql://root:secret@127.0.0.1:3306/test")
    assert not unknown.value.transient and not denied.value.transient and "secret" not in str(denied.value)


def test_on_a_mariadb_warehouse_the_dbt_models_are_left_out_with_a_warning(
    mariadb_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """dbt has no MariaDB adapter here: the code location loads without the dbt models (docs/pipeline-spec.md)."""
    from assets.dbt import dbt_models

    assert dbt_models(REPO / "dbt_project", mariadb_url, {}) is None
    assert "builds models in DuckDB or PostgreSQL, not 'mysql'" in caplog.text
