"""The least-privilege PostgreSQL roles of a deployment (docs/security.md, "Roles"), created idempotently.

- `<prefix>_loader`: what runs connect as. It may create schemas in the warehouse database (the
  platform's `_etl` and `_etl_staging`, and the datasets'), and owns what it creates; it is no
  superuser, cannot create roles or databases, and does not bypass row-level security.
- `<prefix>_reader_<tenant>`: one per tenant, for dashboards and tenants' own queries: it may read
  the tenant's isolated schemas' tables (`<schema>_<tenant>`), nothing else, and does not bypass RLS.
- `<prefix>_writer_<tenant>`: one per tenant, with no login: an `isolation: rls` load publishes as
  it (`SET LOCAL ROLE`, so the loader is a member), so the row-level security policy's WITH CHECK
  binds the publish (warehouse.rls). The platform grants it INSERT on the tenant tables it publishes.
- The readers may also read every row-level-security table, where the policy shows each session
  only the rows of the tenant the session names (`app.tenant_id`).
- `<prefix>_dagster`: the Dagster instance's storage: it may create in its own database only.

The statements only add what is missing, so running them again changes nothing.
"""

from __future__ import annotations

import re

from etl_platform.errors import SpecError
from etl_platform.warehouse.base import META_SCHEMA, STAGING_SCHEMA, Warehouse

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")
_LOGIN = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOREPLICATION"
_NO_LOGIN = "NO" + _LOGIN


def role_names(prefix: str, tenants: list[str]) -> dict[str, str]:
    """Each role's job -> its name."""
    for name in (prefix, *tenants):
        if not _NAME.match(name):
            raise SpecError(f"{name!r} cannot be part of a role name: use lower-case letters, digits and _")
    return {
        "loader": f"{prefix}_loader",
        "dagster": f"{prefix}_dagster",
        **{f"reader {t}": f"{prefix}_reader_{t}" for t in tenants},
        **{f"writer {t}": f"{prefix}_writer_{t}" for t in tenants},
    }


def _ensure_role(warehouse: Warehouse, role: str, attributes: str = _LOGIN) -> bool:
    """Create `role` unless it exists; True if it was created. Its attributes are set either way."""
    created = not warehouse.query("SELECT 1 FROM pg_roles WHERE rolname = ?", (role,))
    if created:
        warehouse.execute(f"CREATE ROLE {warehouse.quote(role)} {attributes}")
    else:
        warehouse.execute(f"ALTER ROLE {warehouse.quote(role)} {attributes}")
    return created


def create_roles(
    warehouse: Warehouse, database: str, prefix: str, tenants: list[str], dagster_database: str | None = None
) -> dict[str, str]:
    """Create (or complete) the role set and its grants on `database`; returns job -> role name.

    The platform's schemas (made by `ensure_metadata` first) pass to the loader, which writes them."""
    if warehouse.dialect != "postgresql":
        raise SpecError(f"roles are PostgreSQL's: this warehouse is {warehouse.dialect}")
    names = role_names(prefix, tenants)
    quote = warehouse.quote
    for job, role in names.items():
        _ensure_role(warehouse, role, _NO_LOGIN if job.startswith("writer ") else _LOGIN)
    warehouse.execute(f"GRANT CONNECT, CREATE, TEMPORARY ON DATABASE {quote(database)} TO {quote(names['loader'])}")
    if dagster_database:
        warehouse.execute(f"GRANT CONNECT, CREATE, TEMPORARY ON DATABASE {quote(dagster_database)} TO {quote(names['dagster'])}")
    for schema in (META_SCHEMA, STAGING_SCHEMA):  # the loader writes the platform's tables: it owns them
        loader = quote(names["loader"])
        warehouse.execute(f"ALTER SCHEMA {quote(schema)} OWNER TO {loader}")
        for (table,) in warehouse.query("SELECT tablename FROM pg_tables WHERE schemaname = ?", (schema,)):
            warehouse.execute(f"ALTER TABLE {warehouse.relation(schema, table)} OWNER TO {loader}")
    schemas = [r[0] for r in warehouse.query("SELECT nspname FROM pg_namespace")]
    for tenant in tenants:
        reader = quote(names[f"reader {tenant}"])
        warehouse.execute(f"GRANT CONNECT ON DATABASE {quote(database)} TO {reader}")
        for schema in [s for s in schemas if s.endswith(f"_{tenant}")]:
            warehouse.execute(f"GRANT USAGE ON SCHEMA {quote(schema)} TO {reader}")
            warehouse.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {quote(schema)} TO {reader}")
        warehouse.execute(f"GRANT {quote(names[f'writer {tenant}'])} TO {quote(names['loader'])}")
        for schema, table in _rls_tables(warehouse):
            warehouse.execute(f"GRANT USAGE ON SCHEMA {quote(schema)} TO {reader}")
            warehouse.execute(f"GRANT SELECT ON {warehouse.relation(schema, table)} TO {reader}")
    return names


def _rls_tables(warehouse: Warehouse) -> list[tuple[str, str]]:
    """The tables under row-level security (isolation: rls), as (schema, table)."""
    return warehouse.query(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind = 'r' AND c.relrowsecurity ORDER BY 1, 2"
    )
