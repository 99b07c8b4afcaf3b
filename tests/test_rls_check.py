"""The RLS self-check on the real PostgreSQL: it fails on a superuser connection, for the table's owner,
for BYPASSRLS and without FORCE, and passes for a plain reader of a forced table. Roles: unique, dropped."""

from __future__ import annotations

import uuid

import psycopg

from etl_platform.warehouse import open_warehouse
from etl_platform.warehouse.rls_check import rls_problems


def test_rls_self_check(postgresql_url: str) -> None:
    database = postgresql_url.rsplit("/", 1)[1]
    owner, reader, bypass = (f"t{uuid.uuid4().hex[:8]}_{job}" for job in ("owner", "reader", "bypass"))
    admin = psycopg.connect(f"host=127.0.0.1 user=postgres dbname={database}", autocommit=True)
    try:
        for role in (owner, reader):
            admin.execute(f'CREATE ROLE "{role}" LOGIN')
        admin.execute(f'CREATE ROLE "{bypass}" LOGIN BYPASSRLS')
        admin.execute(f'CREATE TABLE public.orders (id int, _tenant_id text); ALTER TABLE public.orders OWNER TO "{owner}"')
        warehouse = open_warehouse(postgresql_url)  # the superuser postgres
        try:
            assert rls_problems(warehouse, "public", "orders", reader) == [
                "public.orders has no row-level security (ALTER TABLE ... ENABLE ROW LEVEL SECURITY)",
                "public.orders does not FORCE row-level security: its owner " + owner + " reads every row",
            ]
            admin.execute("ALTER TABLE public.orders ENABLE ROW LEVEL SECURITY")
            admin.execute("CREATE POLICY by_tenant ON public.orders USING (_tenant_id = current_setting('app.tenant_id', true))")
            assert rls_problems(warehouse, "public", "orders", reader) == [
                f"public.orders does not FORCE row-level security: its owner {owner} reads every row"
            ]
            admin.execute("ALTER TABLE public.orders FORCE ROW LEVEL SECURITY")
            assert rls_problems(warehouse, "public", "orders", reader) == []
            assert rls_problems(warehouse, "public", "orders")[0] == "role postgres is a superuser: RLS does not apply to it"
            assert rls_problems(warehouse, "public", "orders", bypass) == [
                f"role {bypass} has BYPASSRLS: RLS does not apply to it"
            ]
            assert rls_problems(warehouse, "public", "orders", owner) == [
                f"role {owner} owns public.orders: read through a role that does not own it"
            ]
        finally:
            warehouse.close()
    finally:
        admin.execute("DROP TABLE IF EXISTS public.orders")
        for role in (owner, reader, bypass):
            admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        admin.close()
