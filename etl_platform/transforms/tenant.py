"""The tenant column: every published row carries its tenant (`tenant:` in the pipeline).

Under `isolation: rls` with a `column`, a load publishes one tenant's rows only: a row whose column
names another tenant is rejected (rule `tenant`) and quarantined, and the load's `tenant_isolation`
check then fails it (docs/security.md, "Row-level security").
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from etl_platform.spec.tenant import TenantSpec
from etl_platform.tables import require_columns
from etl_platform.transforms.base import Rejected, StepOutput

# The rule of rows that name another tenant than their rls load's.
TENANT_RULE = "tenant"


class TenantColumn:
    def __init__(self, spec: TenantSpec, where: str):
        self.spec, self.where = spec, where

    def apply(self, table: pa.Table) -> StepOutput:
        spec = self.spec
        if spec.column is None:
            values = pa.array([spec.value] * len(table), pa.string())
        else:
            require_columns(table, [spec.column], self.where)
            values = pc.cast(table[spec.column], pa.string())
        if spec.name in table.column_names:
            table = table.set_column(table.column_names.index(spec.name), spec.name, values)
        else:
            table = table.append_column(spec.name, values)
        if spec.isolation != "rls" or spec.column is None:
            return StepOutput(table)
        theirs = pc.fill_null(pc.equal(values, spec.value), False)
        if pc.all(theirs).as_py() is not False:
            return StepOutput(table)
        others = table.filter(pc.invert(theirs))
        named = [None if v is None else str(v) for v in others[spec.name].to_pylist()]
        reasons = [f"the row names tenant {v!r}, but this load publishes tenant {spec.value!r}" for v in named]
        rejected = Rejected(others, TENANT_RULE, [spec.column] * len(others), named, reasons)
        return StepOutput(table.filter(theirs), [rejected])
