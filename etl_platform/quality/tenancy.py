"""The `tenant_isolation` check of an `isolation: rls` load, judged inside its publish transaction.

It fails when a row named another tenant (rule `tenant`: those rows are quarantined) or when
row-level security would not bind the tenant's role on the target (warehouse.rls_check): either
way rows would reach, or be readable by, the wrong tenant, so the load publishes nothing.
"""

from __future__ import annotations

from etl_platform.quality.audit import CheckOutcome
from etl_platform.quality.plan import tenant_isolation_check
from etl_platform.spec.tenant import TenantSpec
from etl_platform.warehouse.base import Warehouse
from etl_platform.warehouse.rls_check import rls_problems


def tenant_isolation_outcome(tenant: TenantSpec, target: Warehouse, dataset: str, rows: int, foreign_rows: int) -> CheckOutcome:
    """`rows` the load read, `foreign_rows` of them quarantined as another tenant's."""
    role = tenant.publishing_role
    problems = rls_problems(target, *target.split(dataset), role)
    if foreign_rows:
        problems.insert(0, f"{foreign_rows} row(s) name another tenant than {tenant.value} (quarantined, rule `tenant`)")
    check = tenant_isolation_check()
    return CheckOutcome(check, not problems, rows_checked=rows, rows_failed=foreign_rows, detail="; ".join(problems))
