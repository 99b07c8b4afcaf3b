"""`tenant:`: the tenant column on published rows and in the platform's records, and `schema` isolation
on the real PostgreSQL (`rls` isolation: tests/test_rls.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from etl_platform.engine.runner import run_pipeline
from etl_platform.errors import SpecError
from tests.conftest import environment_for, pipeline, rows, write_csv
from tests.test_incremental_sql import source_db


def test_a_fixed_tenant_and_a_tenant_column(duckdb_url: str, landing: Path) -> None:
    write_csv(landing, "input.csv", "id,client\n1,acme\n2,globex\n")
    environment = environment_for(duckdb_url, landing)
    run_pipeline(pipeline(tenant="acme", destination={"dataset": "analytics.fixed", "write": "append"}), environment)
    spec = pipeline(
        id="by_column",
        tenant={"column": "client", "name": "_client_id"},
        destination={"dataset": "analytics.by_column", "write": "append"},
    )
    run_pipeline(spec, environment)
    assert rows(duckdb_url, "SELECT id, _tenant_id FROM analytics.fixed ORDER BY id") == [
        {"id": "1", "_tenant_id": "acme"},
        {"id": "2", "_tenant_id": "acme"},
    ]
    assert [r["_client_id"] for r in rows(duckdb_url, "SELECT _client_id FROM analytics.by_column ORDER BY id")] == [
        "acme",
        "globex",
    ]
    history = rows(duckdb_url, "SELECT dataset, tenant FROM _etl.load_history ORDER BY dataset")
    assert history == [{"dataset": "analytics.by_column", "tenant": None}, {"dataset": "analytics.fixed", "tenant": "acme"}]
    assert [r["tenant"] for r in rows(duckdb_url, "SELECT tenant FROM _etl.audit_log ORDER BY seq")] == ["acme", None]
    # The processed-file records carry the fixed tenant too; a column's tenant varies by row, so none.
    state = rows(duckdb_url, "SELECT pipeline, tenant FROM _etl.file_state ORDER BY pipeline")
    assert state == [{"pipeline": "by_column", "tenant": None}, {"pipeline": "test_pipeline", "tenant": "acme"}]


def test_a_saved_position_carries_the_fixed_tenant(
    duckdb_url: str, postgresql_url: str, landing: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORDERS_DB_URL", postgresql_url)
    source_db(
        postgresql_url, "CREATE TABLE orders_source (id integer, updated integer); INSERT INTO orders_source VALUES (1, 10)"
    )
    spec = pipeline(
        tenant="acme",
        source={"type": "sql", "url": "${ORDERS_DB_URL}", "table": "orders_source", "incremental": {"cursor": "updated"}},
    )
    run_pipeline(spec, environment_for(duckdb_url, landing))
    assert rows(duckdb_url, "SELECT pipeline, tenant FROM _etl.source_checkpoint") == [
        {"pipeline": "test_pipeline", "tenant": "acme"}
    ]


def test_schema_isolation_keeps_tenants_in_their_schemas(postgresql_url: str, landing: Path) -> None:
    environment = environment_for(postgresql_url, landing)
    for tenant, data in (("acme", "id\n1\n2\n"), ("globex", "id\n3\n")):
        write_csv(landing, "input.csv", data)
        spec = pipeline(id=f"orders_{tenant}", tenant={"value": tenant, "isolation": "schema"})
        assert spec.destination.dataset == f"analytics_{tenant}.target"
        run_pipeline(spec, environment)
    assert rows(postgresql_url, "SELECT id, _tenant_id FROM analytics_acme.target ORDER BY id") == [
        {"id": "1", "_tenant_id": "acme"},
        {"id": "2", "_tenant_id": "acme"},
    ]
    assert rows(postgresql_url, "SELECT id, _tenant_id FROM analytics_globex.target") == [{"id": "3", "_tenant_id": "globex"}]
    assert rows(postgresql_url, "SELECT count(*) AS n FROM pg_tables WHERE schemaname = 'analytics'")[0]["n"] == 0


def test_tenant_spec_errors() -> None:
    with pytest.raises(SpecError, match="a fixed `value` or as the source `column`"):
        pipeline(tenant={"value": "acme", "column": "client"})
    with pytest.raises(SpecError, match="isolation: schema needs a fixed tenant"):
        pipeline(tenant={"column": "client", "isolation": "schema"})
