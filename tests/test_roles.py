"""`etl warehouse init --roles` creates the least-privilege role set idempotently, and a load runs
connected as the loader role (no superuser). Roles are cluster-global: unique names, dropped after."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg

from etl_platform.engine.runner import run_pipeline
from tests.conftest import environment_for, pipeline, rows, write_csv
from tests.test_cli import etl


def drop_roles(database: str, roles: list[str]) -> None:
    with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={database}", autocommit=True) as admin:
        for role in roles:
            if admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                admin.execute(f'DROP OWNED BY "{role}"')
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=test", autocommit=True) as admin:
        for role in roles:
            admin.execute(f'DROP ROLE IF EXISTS "{role}"')


def test_roles_are_created_once_and_the_loader_runs_a_load(postgresql_url: str, landing: Path) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    database = postgresql_url.rsplit("/", 1)[1]
    roles = [f"{prefix}_loader", f"{prefix}_dagster", f"{prefix}_reader_acme", f"{prefix}_writer_acme"]
    try:
        for _ in range(2):  # idempotent
            done = etl(
                "warehouse", "init", "--roles", "--prefix", prefix, "--tenant", "acme", env={"ETL_WAREHOUSE_URL": postgresql_url}
            )
            assert done.returncode == 0, done.stderr
        assert f"loader: {prefix}_loader" in done.stdout
        attributes = rows(
            postgresql_url,
            f"SELECT rolname, rolsuper, rolbypassrls, rolcreaterole FROM pg_roles WHERE rolname LIKE '{prefix}%' ORDER BY 1",
        )
        assert [(r["rolname"], r["rolsuper"], r["rolbypassrls"], r["rolcreaterole"]) for r in attributes] == [
            (name, False, False, False) for name in sorted(roles)
        ]
        write_csv(landing, "input.csv", "id\n1\n2\n")
        loader_url = f"postgresql://{prefix}_loader@127.0.0.1:5432/{database}"
        spec = pipeline(tenant={"value": "acme", "isolation": "schema"})
        assert run_pipeline(spec, environment_for(loader_url, landing)).rows_published == 2
        assert rows(loader_url, "SELECT db_user FROM _etl.audit_log ORDER BY seq DESC LIMIT 1") == [
            {"db_user": f"{prefix}_loader"}
        ]
        assert (
            etl(
                "warehouse", "init", "--roles", "--prefix", prefix, "--tenant", "acme", env={"ETL_WAREHOUSE_URL": postgresql_url}
            ).returncode
            == 0
        )
        reader_url = f"postgresql://{prefix}_reader_acme@127.0.0.1:5432/{database}"
        assert rows(reader_url, "SELECT count(*) AS n FROM analytics_acme.target") == [{"n": 2}]
    finally:
        drop_roles(database, roles)
