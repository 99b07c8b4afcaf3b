"""The row-level-security self-check: does RLS on a table actually bind the role that reads it?

PostgreSQL silently skips row-level security for a superuser, for a role with BYPASSRLS, and for
the table's owner unless the table FORCEs it; and a table without ENABLE has none at all. Any of
these voids tenant isolation without an error, so `rls_problems` names each one found. It is a
function with no CLI or Dagster in it, for `etl doctor` and an asset check to call.
"""

from __future__ import annotations

from etl_platform.warehouse.base import Warehouse


def rls_problems(warehouse: Warehouse, schema: str, table: str, reading_role: str | None = None) -> list[str]:
    """What voids RLS on `schema.table` for `reading_role` (default: this connection's role); [] when it binds."""
    if warehouse.dialect != "postgresql":
        return [f"{schema}.{table}: row-level security needs PostgreSQL, not {warehouse.dialect}"]
    role = reading_role or warehouse.database_user()
    found = warehouse.query(
        "SELECT c.relrowsecurity, c.relforcerowsecurity, pg_get_userbyid(c.relowner), "
        "(SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ? AND c.relname = ?",
        (schema, table),
    )
    if not found:
        return [f"{schema}.{table} does not exist"]
    enabled, forced, owner, policies = found[0]
    attributes = warehouse.query("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = ?", (role,))
    if not attributes:
        return [f"role {role} does not exist"]
    superuser, bypass = attributes[0]
    checks = [
        (not enabled, f"{schema}.{table} has no row-level security (ALTER TABLE ... ENABLE ROW LEVEL SECURITY)"),
        (enabled and not policies, f"{schema}.{table} has no policy: RLS shows nobody any row"),
        (not forced, f"{schema}.{table} does not FORCE row-level security: its owner {owner} reads every row"),
        (superuser, f"role {role} is a superuser: RLS does not apply to it"),
        (bypass, f"role {role} has BYPASSRLS: RLS does not apply to it"),
        (role == owner, f"role {role} owns {schema}.{table}: read through a role that does not own it"),
    ]
    return [problem for failed, problem in checks if failed]
