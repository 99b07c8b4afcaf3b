"""Row-level security: every tenant's rows in one PostgreSQL table, each tenant seeing only its own.

The table ENABLEs and FORCEs row-level security (FORCE binds its owner, the loader, too), and one
policy admits a row when its tenant column equals `current_setting('app.tenant_id', true)`: with
the setting unset that is NULL, so a session that names no tenant sees no row (it fails closed).
The platform names the tenant per transaction (`set_config(..., true)`), so the setting ends with
the transaction and a pooled connection reused for another tenant starts from none.

PostgreSQL refuses COPY FROM into a table under RLS, so a load stages its rows in a staging table
the loader owns (no RLS there), is audited like any load, and publishes with `INSERT ... SELECT`
under the tenant's role (`SET LOCAL ROLE`), where the policy's WITH CHECK refuses a row of another
tenant even when the loader itself is a superuser (docs/security.md, "Row-level security").
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import pyarrow as pa

from etl_platform.errors import DestinationError
from etl_platform.spec.tenant import TenantSpec
from etl_platform.warehouse.base import SEQ, STAGING_SCHEMA, Warehouse
from etl_platform.warehouse.ledger import held_already
from etl_platform.warehouse.publish import Audit, PublishResult, ensure_target, merge_rows, record_load

TENANT_SETTING = "app.tenant_id"
POLICY = "etl_tenant_isolation"


def require_rls(warehouse: Warehouse, dataset: str, write: str, full_refresh: bool) -> None:
    """Refuse, before anything is read, what `isolation: rls` cannot do."""
    if warehouse.dialect != "postgresql":
        raise DestinationError(
            f"{dataset}: isolation: rls is PostgreSQL row-level security, and this warehouse is {warehouse.dialect}. "
            f"Fix: point ETL_WAREHOUSE_URL at PostgreSQL, or use isolation: schema"
        )
    if write == "replace" or full_refresh:
        raise DestinationError(
            f"{dataset}: isolation: rls publishes with write: append or merge (replace and full refresh "
            f"would reach other tenants' loads in the shared ledger and quarantine). Fix: use write: append or merge"
        )


def set_tenant(warehouse: Warehouse, tenant: str) -> None:
    """Inside a transaction: the tenant its statements see and write, until the transaction ends."""
    warehouse.query(f"SELECT set_config('{TENANT_SETTING}', ?, true)", (tenant,))


@contextmanager
def tenant_transaction(warehouse: Warehouse, tenant: str) -> Iterator[Warehouse]:
    """A transaction that sees `tenant`'s rows of RLS tables, committed at the end."""
    with warehouse.transaction():
        set_tenant(warehouse, tenant)
        yield warehouse


def tenant_key(tenant: TenantSpec, primary_key: list[str]) -> list[str]:
    """A merge's key in a table of every tenant: each tenant's keys are its own, so two tenants'
    rows with the same primary key are two rows, and one tenant's upsert never meets the other's."""
    return [tenant.name, *(column for column in primary_key if column != tenant.name)]


def secure_table(warehouse: Warehouse, dataset: str, column: str, role: str, privileges: str) -> None:
    """Inside the publish transaction: ENABLE and FORCE RLS on the target, its policy, and the
    grants (`privileges`) its tenant's role publishes with. Only what is missing is changed."""
    if not warehouse.query("SELECT 1 FROM pg_roles WHERE rolname = ?", (role,)):
        raise DestinationError(
            f"{dataset}: role {role} does not exist, and an rls load publishes as its tenant's role. "
            f"Fix: run `etl warehouse init --roles --tenant <tenant>`, or set tenant.role to an existing role"
        )
    schema, table = warehouse.split(dataset)
    target, quote = warehouse.relation(schema, table), warehouse.quote
    flags = "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = ?::regclass"
    enabled, forced = warehouse.query(flags, (target,))[0]
    if not enabled:
        warehouse.execute(f"ALTER TABLE {target} ENABLE ROW LEVEL SECURITY")
    if not forced:
        warehouse.execute(f"ALTER TABLE {target} FORCE ROW LEVEL SECURITY")
    if not warehouse.query("SELECT 1 FROM pg_policy WHERE polrelid = ?::regclass AND polname = ?", (target, POLICY)):
        mine = f"{quote(column)} = current_setting('{TENANT_SETTING}', true)"
        warehouse.execute(f"CREATE POLICY {POLICY} ON {target} USING ({mine}) WITH CHECK ({mine})")
    warehouse.execute(f"GRANT USAGE ON SCHEMA {quote(schema)} TO {quote(role)}")
    warehouse.execute(f"GRANT {privileges} ON {target} TO {quote(role)}")


def publish_as_tenant(warehouse: Warehouse, dataset: str, staging: str, tenant: TenantSpec, key: list[str] | None) -> int:
    """Inside the publish transaction: the staged rows into the target as the tenant's role, under
    the policy's USING and WITH CHECK, appended or (`key`) merged on it; returns the rows the tenant
    now has in the target."""
    staged, target = warehouse.relation(STAGING_SCHEMA, staging), warehouse.target(dataset)
    role = warehouse.quote(tenant.publishing_role)
    names = [c for c in warehouse.columns(STAGING_SCHEMA, staging) if c != SEQ]
    columns = ", ".join(map(warehouse.quote, names))
    # USAGE on the staging schema, and SELECT on this load's staging table only
    warehouse.execute(f"GRANT USAGE ON SCHEMA {warehouse.quote(STAGING_SCHEMA)} TO {role}")
    warehouse.execute(f"GRANT SELECT ON {staged} TO {role}")
    if key is not None:
        warehouse.ensure_unique_key(target, key)  # as the owner, before the role that may not create it
    warehouse.execute(f"SET LOCAL ROLE {role}")
    set_tenant(warehouse, tenant.value)
    if key is None:
        warehouse.execute(f"INSERT INTO {target} ({columns}) SELECT {columns} FROM {staged}")
    else:
        merge_rows(warehouse, target, staged, names, key)
    rows = warehouse.row_count(dataset)
    warehouse.execute("RESET ROLE")
    return rows


def publish_rls(
    warehouse: Warehouse,
    dataset: str,
    staging: str,
    tenant: TenantSpec,
    primary_key: list[str] | None,
    ledger_row: dict,
    quarantined: Iterable[pa.Table],
    audit: Audit,
    evolve: bool = False,
) -> PublishResult:
    """Append (no `primary_key`) or merge one tenant's staged rows into the shared RLS table, audit, and
    record the load, atomically (an append: unless the ledger shows this input was appended already)."""
    incoming = {c: t for c, t in warehouse.columns(STAGING_SCHEMA, staging).items() if c != SEQ}
    key = tenant_key(tenant, primary_key) if primary_key else None
    warehouse.create_schema(warehouse.split(dataset)[0])
    with warehouse.publishing(dataset):
        if key is None and held_already(warehouse, ledger_row):
            return PublishResult(0, None, "this input was already appended (load ledger)")
        ensure_target(warehouse, dataset, incoming, key or [], replace=False, evolve=evolve)
        privileges = "SELECT, INSERT" if key is None else "SELECT, INSERT, UPDATE"  # ON CONFLICT DO UPDATE
        secure_table(warehouse, dataset, tenant.name, tenant.publishing_role, privileges)
        tenant_rows = publish_as_tenant(warehouse, dataset, staging, tenant, key)
        audit(warehouse)
        version = record_load(warehouse, dataset, ledger_row, quarantined)
        return PublishResult(ledger_row["rows"], tenant_rows, schema_version=version)
