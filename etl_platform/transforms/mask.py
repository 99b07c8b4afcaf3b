"""PII masking: salted SHA-256 (joinable, not reversible) or redaction."""

from __future__ import annotations

import pyarrow as pa

from etl_platform.spec.steps import MaskStep
from etl_platform.tables import ident, require_columns
from etl_platform.transforms.base import StepOutput, TransformContext, run_sql


class Mask:
    def __init__(self, step: MaskStep, where: str, context: TransformContext):
        self.where = where
        self.context = context
        self.expressions = {}
        for column, spec in step.specs().items():
            if spec.method == "sha256":
                salt = context.secret(spec.salt_secret).replace("'", "''")
                self.expressions[column] = f"sha256('{salt}' || CAST({ident(column)} AS VARCHAR))"
            else:
                self.expressions[column] = f"CASE WHEN {ident(column)} IS NULL THEN NULL ELSE '[REDACTED]' END"

    def apply(self, table: pa.Table) -> StepOutput:
        require_columns(table, list(self.expressions), self.where)
        replaced = ", ".join(f"{e} AS {ident(c)}" for c, e in self.expressions.items())
        return StepOutput(run_sql(self.context, table, f"SELECT * REPLACE ({replaced}) FROM chunk", self.where))
