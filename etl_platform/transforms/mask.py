"""PII masking: salted SHA-256 (joinable, not reversible), keyed HMAC-SHA256, or redaction."""

from __future__ import annotations

import hashlib
import hmac

import pyarrow as pa

from etl_platform.spec.steps import MaskStep
from etl_platform.tables import ident, require_columns
from etl_platform.transforms.base import StepOutput, TransformContext, run_sql


def keyed_digests(column: pa.ChunkedArray, key: bytes) -> pa.Array:
    """HMAC-SHA256 of each value's text (hex), nulls kept: DuckDB has no HMAC function."""
    texts = column.cast(pa.string()).to_pylist()
    return pa.array([None if t is None else hmac.new(key, t.encode(), hashlib.sha256).hexdigest() for t in texts], pa.string())


class Mask:
    def __init__(self, step: MaskStep, where: str, context: TransformContext):
        self.where = where
        self.context = context
        self.expressions = {}
        self.keys: dict[str, bytes] = {}
        for column, spec in step.specs().items():
            if spec.method == "sha256":
                salt = context.secret(spec.salt_secret).replace("'", "''")
                self.expressions[column] = f"sha256('{salt}' || CAST({ident(column)} AS VARCHAR))"
            elif spec.method == "hmac":
                self.keys[column] = context.secret(spec.salt_secret).encode()
            else:
                self.expressions[column] = f"CASE WHEN {ident(column)} IS NULL THEN NULL ELSE '[REDACTED]' END"

    def apply(self, table: pa.Table) -> StepOutput:
        require_columns(table, [*self.expressions, *self.keys], self.where)
        if self.expressions:
            replaced = ", ".join(f"{e} AS {ident(c)}" for c, e in self.expressions.items())
            table = run_sql(self.context, table, f"SELECT * REPLACE ({replaced}) FROM chunk", self.where)
        for column, key in self.keys.items():
            table = table.set_column(table.column_names.index(column), column, keyed_digests(table[column], key))
        return StepOutput(table)
