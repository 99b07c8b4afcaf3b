"""`isolation: rls` on the real PostgreSQL: one table for every tenant behind row-level security,
loaded through staging and published as the tenant's role (docs/security.md, "Row-level security").
Roles are cluster-global: unique names, dropped after."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest

from etl_platform.engine.runner import run_pipeline
from etl_platform.errors import DestinationError, SpecError
from etl_platform.observability.health import rls_findings
from etl_platform.quality.audit import QualityGateFailed
from etl_platform.quality.plan import plan_checks
from etl_platform.warehouse import open_warehouse
from etl_platform.warehouse.metadata import ensure_metadata
from etl_platform.warehouse.rls import tenant_transaction
from etl_platform.warehouse.rls_check import rls_problems
from etl_platform.warehouse.roles import create_roles
from tests.conftest import environment_for, pipeline, rows, write_csv
from tests.test_roles import drop_roles


def rls_pipeline(prefix: str, tenant: str, path: str = "input.csv", destination: dict | None = None, **fields):
    tenancy = {"value": tenant, "isolation": "rls", "role": f"{prefix}_writer_{tenant}", **fields}
    more = {"destination": destination} if destination else {}
    return pipeline(id=f"orders_{tenant}", tenant=tenancy, source={"type": "csv", "path": path}, **more)


def init_roles(url: str, prefix: str) -> None:
    admin = open_warehouse(url)
    try:
        ensure_metadata(admin)
        create_roles(admin, url.rsplit("/", 1)[1], prefix, ["acme", "globex"])
    finally:
        admin.close()


def ids(warehouse) -> list[str]:
    return [r[0] for r in warehouse.query("SELECT id FROM analytics.target ORDER BY id")]


def test_rls_keeps_tenants_apart_in_one_table(postgresql_url: str, landing: Path) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    database = postgresql_url.rsplit("/", 1)[1]
    roles = [f"{prefix}_{job}" for job in ("loader", "dagster", "reader_acme", "reader_globex", "writer_acme", "writer_globex")]
    environment = environment_for(postgresql_url, landing)  # a superuser: publishing as the tenant's role still binds it
    as_loader = environment_for(f"postgresql://{prefix}_loader@127.0.0.1:5432/{database}", landing)
    try:
        init_roles(postgresql_url, prefix)
        for tenant, data, connected in (("acme", "id\n1\n2\n", as_loader), ("globex", "id\n3\n", environment)):
            write_csv(landing, "input.csv", data)
            spec = rls_pipeline(prefix, tenant)
            report = run_pipeline(spec, connected)
            assert [c.name for c in report.checks] == [c.name for c in plan_checks(spec)]  # the asset checks it declares
            assert [(c.name, c.passed) for c in report.checks if c.name == "tenant_isolation"] == [("tenant_isolation", True)]
        init_roles(postgresql_url, prefix)  # again after the first loads: the readers may read the new table
        reader = open_warehouse(f"postgresql://{prefix}_reader_acme@127.0.0.1:5432/{database}")
        try:  # one pooled connection, reused for one tenant after the other
            assert ids(reader) == []  # no tenant named: no row
            with tenant_transaction(reader, "globex"):
                assert ids(reader) == ["3"]
            with tenant_transaction(reader, "acme"):  # the connection served globex just before
                assert ids(reader) == ["1", "2"]
                assert reader.query("SELECT count(*) FROM analytics.target WHERE _tenant_id = 'globex'") == [(0,)]
            assert ids(reader) == []  # the setting ended with the transaction
            assert rls_problems(reader, "analytics", "target") == []
        finally:
            reader.close()
        superuser = open_warehouse(postgresql_url)
        try:
            assert any("superuser" in p for p in rls_problems(superuser, "analytics", "target"))
        finally:
            superuser.close()
        doctor = rls_findings(postgresql_url, {}, [rls_pipeline(prefix, "acme"), rls_pipeline("x", "acme", role="postgres")])
        assert [(f.ok, "superuser" in f.detail) for f in doctor] == [(True, False), (False, True)]

        # A row of another tenant in acme's load: nothing published, the row quarantined, the load failed.
        write_csv(landing, "mixed.csv", "id,_tenant_id\n4,acme\n5,globex\n")
        with pytest.raises(QualityGateFailed) as failed:
            run_pipeline(rls_pipeline(prefix, "acme", "mixed.csv", column="_tenant_id"), environment)
        verdict = {c.name: c for c in failed.value.outcomes}["tenant_isolation"]
        assert not verdict.passed and "another tenant" in verdict.detail
        assert rows(postgresql_url, "SELECT id FROM analytics.target ORDER BY id") == [{"id": "1"}, {"id": "2"}, {"id": "3"}]
        quarantined = rows(postgresql_url, "SELECT rule, value, tenant FROM _etl.quarantine")
        assert quarantined == [{"rule": "tenant", "value": "globex", "tenant": "acme"}]

        # The database's own wall: as acme's role, the policy's WITH CHECK refuses a row of globex.
        with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={database}") as admin:
            admin.execute(f'SET ROLE "{prefix}_writer_acme"')
            admin.execute("SELECT set_config('app.tenant_id', 'acme', true)")
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
                admin.execute("INSERT INTO analytics.target (id, _tenant_id) VALUES ('6', 'globex')")
    finally:
        drop_roles(database, roles)


def test_rls_merge_upserts_each_tenants_own_keys(postgresql_url: str, landing: Path) -> None:
    """Two tenants with the same ids in one table: each merge updates and inserts its tenant's rows only."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    database = postgresql_url.rsplit("/", 1)[1]
    roles = [f"{prefix}_{job}" for job in ("loader", "dagster", "reader_acme", "reader_globex", "writer_acme", "writer_globex")]
    environment = environment_for(postgresql_url, landing)
    merge = {"dataset": "analytics.target", "write": "merge", "primary_key": ["id"]}
    try:
        init_roles(postgresql_url, prefix)
        for tenant, data in (
            ("acme", "id,name\n1,a1\n2,a2\n"),
            ("globex", "id,name\n1,g1\n"),
            ("acme", "id,name\n2,a2b\n3,a3\n"),
        ):
            write_csv(landing, f"{tenant}.csv", data)
            spec = rls_pipeline(prefix, tenant, f"{tenant}.csv", destination=merge)
            report = run_pipeline(spec, environment)
            assert report.rows_published == data.count("\n") - 1
        assert rows(postgresql_url, "SELECT _tenant_id, id, name FROM analytics.target ORDER BY 1, 2") == [
            {"_tenant_id": "acme", "id": "1", "name": "a1"},
            {"_tenant_id": "acme", "id": "2", "name": "a2b"},
            {"_tenant_id": "acme", "id": "3", "name": "a3"},
            {"_tenant_id": "globex", "id": "1", "name": "g1"},
        ]
        # As globex's role the policy hides acme's rows: an upsert of id 2 cannot reach acme's row 2.
        with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={database}") as admin:
            admin.execute(f'SET ROLE "{prefix}_writer_globex"')
            admin.execute("SELECT set_config('app.tenant_id', 'globex', true)")
            admin.execute(
                "INSERT INTO analytics.target (_tenant_id, id, name) VALUES ('globex', '2', 'g2') "
                "ON CONFLICT (_tenant_id, id) DO UPDATE SET name = excluded.name"
            )
            assert admin.execute("SELECT count(*) FROM analytics.target").fetchone() == (2,)
    finally:
        drop_roles(database, roles)


def test_rls_needs_postgresql(duckdb_url: str, landing: Path) -> None:
    write_csv(landing, "input.csv", "id\n1\n")
    with pytest.raises(DestinationError, match="isolation: rls is PostgreSQL row-level security"):
        run_pipeline(rls_pipeline("etl", "acme"), environment_for(duckdb_url, landing))


def test_a_tenant_per_static_partition(duckdb_url: str, landing: Path) -> None:
    write_csv(landing, "acme.csv", "id\n1\n")
    write_csv(landing, "globex.csv", "id\n2\n")
    spec = pipeline(
        tenant={"partition_key": True},
        partitions={"static": ["acme", "globex"]},
        source={"type": "csv", "path": "{partition}.csv"},
    )
    environment = environment_for(duckdb_url, landing)
    for key in ("acme", "globex"):
        run_pipeline(spec.for_partition(key), environment)
    assert rows(duckdb_url, "SELECT id, _tenant_id FROM analytics.target ORDER BY id") == [
        {"id": "1", "_tenant_id": "acme"},
        {"id": "2", "_tenant_id": "globex"},
    ]
    assert [r["tenant"] for r in rows(duckdb_url, "SELECT tenant FROM _etl.load_history ORDER BY tenant")] == ["acme", "globex"]
    source = spec.source.model_dump()
    rls = pipeline(tenant={"partition_key": True, "isolation": "rls"}, partitions={"static": ["acme"]}, source=source)
    assert rls.for_partition("acme").tenancy.publishing_role == "etl_writer_acme"
    with pytest.raises(SpecError, match="needs static partitions"):
        pipeline(tenant={"partition_key": True})
    with pytest.raises(SpecError, match="cannot name tenants"):
        pipeline(tenant={"partition_key": True}, partitions={"static": ["Acme-1"]}, source=source)
    with pytest.raises(SpecError, match="isolation: rls needs the load's tenant"):
        pipeline(tenant={"column": "client", "isolation": "rls"})
