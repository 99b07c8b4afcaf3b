"""What a pipeline spec can reach (issue 22, docs/security.md): source paths stay inside the landing
zone and the declared roots; custom checks and SQL sources only read, on every warehouse."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from etl_platform.cli.main import cli
from etl_platform.engine.environment import Environment
from etl_platform.engine.runner import run_pipeline
from etl_platform.errors import EtlError, SourceError, SpecError
from etl_platform.spec import PipelineSpec
from etl_platform.warehouse import open_warehouse
from tests.conftest import environment_for, pipeline, rows, write_csv

CSV_SOURCE = "source:\n  type: csv\n  path: {path}\n"
PIPELINE = "id: {id}\n" + CSV_SOURCE + "destination:\n  dataset: analytics.{id}\n"


def validate(folder: Path, landing: Path, **env: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["validate"], env={"ETL_PIPELINES_DIR": str(folder), "ETL_LANDING_DIR": str(landing), **env})
    return result.exit_code, result.output


@pytest.mark.parametrize(
    "path",
    ["../secrets/users.csv", "/etc/passwd", "orders/../../secrets/*.csv", "linked/users.csv", "s3://other-bucket/x/*.csv"],
)
def test_etl_validate_refuses_a_source_path_outside_the_roots_with_file_and_line(tmp_path: Path, path: str) -> None:
    landing, secrets = tmp_path / "landing", tmp_path / "secrets"
    write_csv(secrets, "users.csv", "name\nroot\n")
    landing.mkdir()
    (landing / "linked").symlink_to(secrets)  # a folder inside the landing zone that leads out of it
    folder = tmp_path / "pipelines"
    folder.mkdir()
    (folder / "leak.yaml").write_text(PIPELINE.format(id="leak", path=path))
    code, output = validate(folder, landing)
    assert code == 1
    assert f"leak.yaml:4: source.path: path '{path}' resolves to" in output
    assert "outside the landing zone and the allowed roots" in output and "ETL_ALLOWED_ROOTS" in output


def test_a_declared_root_admits_its_folder_and_bucket_prefix_only(tmp_path: Path) -> None:
    landing, shared = tmp_path / "landing", tmp_path / "shared"
    landing.mkdir()
    folder = tmp_path / "pipelines"
    folder.mkdir()
    (folder / "a.yaml").write_text(PIPELINE.format(id="a", path=f"{shared}/feeds/*.csv"))
    (folder / "b.yaml").write_text(PIPELINE.format(id="b", path="s3://feeds-bucket/exports/2026/*.csv"))
    (folder / "c.yaml").write_text(PIPELINE.format(id="c", path="orders/*.csv"))
    code, output = validate(folder, landing, ETL_ALLOWED_ROOTS=f"{shared}, s3://feeds-bucket/exports")
    assert code == 0, output
    (folder / "d.yaml").write_text(PIPELINE.format(id="d", path="s3://feeds-bucket/private/*.csv"))
    (folder / "e.yaml").write_text(PIPELINE.format(id="e", path="s3://feeds-bucket/exports/../private/*.csv"))
    code, output = validate(folder, landing, ETL_ALLOWED_ROOTS=f"{shared},s3://feeds-bucket/exports")
    assert code == 1 and "d.yaml:4" in output and "e.yaml:4" in output and "a.yaml" not in output


def test_a_file_arrival_trigger_is_held_to_the_roots_too(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    folder = tmp_path / "pipelines"
    folder.mkdir()
    trigger = "triggers:\n  - file_arrival: {bucket: other-bucket, prefix: dumps}\n"
    (folder / "t.yaml").write_text("id: t\nsource:\n  type: csv\ndestination:\n  dataset: analytics.t\n" + trigger)
    code, output = validate(folder, landing)
    assert code == 1 and "t.yaml:7" in output and "s3://other-bucket/dumps/*" in output


def test_the_run_refuses_what_validation_did_not_see(tmp_path: Path, duckdb_url: str, landing: Path) -> None:
    """Specs built without the deployment's roots, a glob that matches a symlink: the run judges each file."""
    secrets = tmp_path / "secrets"
    write_csv(secrets, "users.csv", "name\nroot\n")
    climbing = pipeline(source={"type": "csv", "path": "../secrets/users.csv"})
    with pytest.raises(SourceError, match=r"outside the landing zone and the allowed roots"):
        run_pipeline(climbing, environment_for(duckdb_url, landing))
    write_csv(landing, "day/good.csv", "name\nalice\n")
    (landing / "day" / "zz.csv").symlink_to(secrets / "users.csv")
    globbed = pipeline(source={"type": "csv", "path": "day/*.csv"})
    with pytest.raises(SourceError, match=r"zz.csv resolves to .*users.csv, outside"):
        run_pipeline(globbed, environment_for(duckdb_url, landing))
    assert open_warehouse(duckdb_url).columns("analytics", "target") is None  # nothing published
    declared = Environment.at(duckdb_url, landing, tmp_path / "lake", allowed_roots=(str(secrets),))
    assert run_pipeline(climbing, declared).rows_published == 1


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM {dataset}) failing; DROP TABLE analytics.canary; SELECT * FROM (SELECT 1",
        "SELECT * FROM {dataset} WHERE amount < 0; DROP TABLE analytics.canary",
        "DROP TABLE analytics.canary",
        "INSERT INTO analytics.canary VALUES (2)",
        "WITH gone AS (DELETE FROM analytics.canary RETURNING *) SELECT * FROM gone",
        "SELECT * INTO analytics.copy FROM {dataset}",
        "COMMIT",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM {dataset} WHERE name IN (SELECT * FROM glob('/home/*'))",
    ],
)
def test_a_custom_query_that_is_not_one_select_is_refused_at_validation(sql: str) -> None:
    refused = r"(must be one SELECT|does not parse|may read tables only)"
    with pytest.raises(SpecError, match=r"quality.rules\[0\]: `sql` " + refused):
        pipeline(quality={"rules": [{"rule": "CustomQuery", "name": "sneaky", "sql": sql}]})
    with pytest.raises(SpecError, match=r"source: `query` " + refused):
        pipeline(source={"type": "sql", "query": sql.replace("{dataset}", "analytics.target")})


def _with_unvalidated_check(spec: PipelineSpec, sql: str) -> PipelineSpec:
    """The spec with a check's SQL swapped after validation: what a parser gap would let through."""
    rule = spec.quality.rules[0].model_copy(update={"sql": sql})
    return spec.model_copy(update={"quality": spec.quality.model_copy(update={"rules": [rule]})})


HOSTILE_CHECKS = [
    "SELECT * FROM {dataset}) failing; DROP TABLE analytics.canary; SELECT * FROM (SELECT 1",
    "SELECT * FROM {dataset}) failing; INSERT INTO analytics.canary VALUES (2); SELECT * FROM (SELECT 1",
    "SELECT * FROM {dataset}) failing; COMMIT; SELECT * FROM (SELECT 1",
]


@pytest.mark.parametrize("sql", HOSTILE_CHECKS)
def test_a_check_that_tries_to_write_fails_the_run_and_the_canary_survives(
    any_warehouse_url: str, landing: Path, sql: str
) -> None:
    warehouse = open_warehouse(any_warehouse_url)
    warehouse.create_schema("analytics")
    canary = warehouse.relation("analytics", "canary")
    warehouse.execute(f"CREATE TABLE {canary} (x INTEGER)")
    warehouse.execute(f"INSERT INTO {canary} VALUES (1)")
    warehouse.close()
    write_csv(landing, "input.csv", "id,amount\n1,5\n")
    valid = pipeline(quality={"rules": [{"rule": "CustomQuery", "name": "sneaky", "sql": "SELECT * FROM {dataset}"}]})
    with pytest.raises(EtlError, match=r"quality rule sneaky: the query failed: .*it runs read-only"):
        run_pipeline(_with_unvalidated_check(valid, sql), environment_for(any_warehouse_url, landing))
    assert rows(any_warehouse_url, "SELECT x FROM analytics.canary") == [{"x": 1}]
    assert open_warehouse(any_warehouse_url).columns("analytics", "target") is None  # the load did not publish


def test_a_postgres_function_that_writes_is_stopped_by_the_read_only_savepoint(postgresql_url: str, landing: Path) -> None:
    """One SELECT can still call a function that writes: the read-only savepoint stops it."""
    warehouse = open_warehouse(postgresql_url)
    warehouse.create_schema("analytics")
    warehouse.execute("CREATE TABLE analytics.canary (x INTEGER)")
    warehouse.execute(
        "CREATE FUNCTION public.drop_canary() RETURNS boolean LANGUAGE plpgsql AS "
        "$$ BEGIN DROP TABLE analytics.canary; RETURN true; END $$"
    )
    warehouse.close()
    write_csv(landing, "input.csv", "id,amount\n1,5\n")
    check = {"rule": "CustomQuery", "name": "sneaky", "sql": "SELECT * FROM {dataset} WHERE public.drop_canary()"}
    with pytest.raises(EtlError, match=r"sneaky: the query failed: cannot execute DROP TABLE in a read-only transaction"):
        run_pipeline(pipeline(quality={"rules": [check]}), environment_for(postgresql_url, landing))
    assert open_warehouse(postgresql_url).columns("analytics", "canary") == {"x": "integer"}


def test_read_only_sees_the_open_transaction_then_gives_it_back_writable(any_warehouse_url: str) -> None:
    warehouse = open_warehouse(any_warehouse_url)
    warehouse.create_schema("analytics")
    canary = warehouse.relation("analytics", "canary")
    warehouse.execute(f"CREATE TABLE {canary} (x INTEGER)")
    warehouse.begin()
    warehouse.execute(f"INSERT INTO {canary} VALUES (1)")
    with warehouse.read_only(timeout_seconds=0.5) as read:
        assert read(f"SELECT count(*) AS n FROM {canary}").to_pylist() == [{"n": 1}]  # uncommitted rows
    for attempt in (f"DROP TABLE {canary}", f"INSERT INTO {canary} VALUES (2)", f"SELECT 1; DELETE FROM {canary}"):
        with pytest.raises(Exception), warehouse.read_only(timeout_seconds=0.5) as read:  # noqa: B017 - each driver's own error
            read(attempt)
    slow = {
        "postgresql": "SELECT pg_sleep(5)",
        "duckdb": "SELECT sum(i * i) FROM range(100000000000) t(i)",
        "sqlite": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT max(i) FROM n",
    }[warehouse.dialect]
    with pytest.raises(Exception, match=r"(?i)timeout|interrupt"), warehouse.read_only(timeout_seconds=0.5) as read:
        read(slow)
    if warehouse.dialect != "duckdb":  # DuckDB aborts a transaction whose statement was interrupted
        warehouse.execute(f"INSERT INTO {canary} VALUES (3)")
        warehouse.commit()
        assert rows(any_warehouse_url, f"SELECT x FROM {canary} ORDER BY x") == [{"x": 1}, {"x": 3}]


def _canary(url: str) -> None:
    warehouse = open_warehouse(url)
    warehouse.create_schema("analytics")
    canary = warehouse.relation("analytics", "canary")
    warehouse.execute(f"CREATE TABLE {canary} (x INTEGER)")
    warehouse.execute(f"INSERT INTO {canary} VALUES (1)")
    warehouse.close()


def _with_unvalidated_query(spec: PipelineSpec, query: str) -> PipelineSpec:
    """The spec with its SQL source's query swapped after validation: what a parser gap would let through."""
    return spec.model_copy(update={"source": spec.source.model_copy(update={"query": query})})


@pytest.mark.parametrize("query", ["DROP TABLE analytics.canary", "SELECT 1 AS x; DROP TABLE analytics.canary"])
def test_a_sql_source_reading_the_warehouse_cannot_write_it(any_warehouse_url: str, landing: Path, query: str) -> None:
    """PostgreSQL reads through a cursor (DECLARE takes one SELECT) on a read-only connection; DuckDB and
    SQLite have their own parser or compiler say the statement is one SELECT that only reads."""
    _canary(any_warehouse_url)
    valid = pipeline(source={"type": "sql", "query": "SELECT x FROM analytics.canary"})
    refusal = r"query failed: .*(only one SELECT|syntax error at or near \"(DROP|;)\"|multiple commands)"
    with pytest.raises(SourceError, match=refusal):
        run_pipeline(_with_unvalidated_query(valid, query), environment_for(any_warehouse_url, landing))
    assert rows(any_warehouse_url, "SELECT x FROM analytics.canary") == [{"x": 1}]


@pytest.mark.parametrize(
    "table", ["analytics.canary; DROP TABLE analytics.canary", "(SELECT 1) AS t", "read_csv('/etc/passwd')", "a.b.c"]
)
def test_a_sql_source_table_is_a_plain_name(table: str) -> None:
    """`table` is written into `SELECT * FROM <table>`: anything but [schema.]name is refused at validation."""
    with pytest.raises(SpecError, match=r"source\.table: .* is not allowed; a sql source's table is `\[schema\.\]table`"):
        pipeline(source={"type": "sql", "table": table})
    assert pipeline(source={"type": "sql", "table": "Sales.Orders_2024"}).source.table == "Sales.Orders_2024"


DELETING_FUNCTION = (
    "CREATE FUNCTION delete_canary() RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN DELETE FROM canary; RETURN true; END $$"
)


@pytest.mark.parametrize(
    ("kind", "query"), [("sqlite", "DELETE FROM canary RETURNING x"), ("postgresql", "SELECT delete_canary() AS x")]
)
def test_a_sql_source_reading_another_database_cannot_write_it(
    request: pytest.FixtureRequest, kind: str, query: str, duckdb_url: str, landing: Path
) -> None:
    import sqlalchemy as sa

    other = request.getfixturevalue(f"{kind}_url")
    engine = sa.create_engine(other)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE canary (x INTEGER)")
        connection.exec_driver_sql("INSERT INTO canary VALUES (1)")
        if kind == "postgresql":
            connection.exec_driver_sql(DELETING_FUNCTION)
    valid = pipeline(source={"type": "sql", "url": other, "query": "SELECT x FROM canary"})
    with pytest.raises(SourceError, match=r"(?i)read-only|readonly"):
        run_pipeline(_with_unvalidated_query(valid, query), environment_for(duckdb_url, landing))
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT x FROM canary").fetchall() == [(1,)]
    engine.dispose()
