"""Cast columns to logical types; values that do not fit are quarantined, the rest go on."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from etl_platform.spec.steps import CastStep
from etl_platform.tables import ident, require_columns
from etl_platform.transforms.base import Rejected, StepOutput, TransformContext, run_sql
from etl_platform.types import duckdb_type


class Cast:
    def __init__(self, step: CastStep, where: str, context: TransformContext):
        self.targets = step.targets()
        self.where = where
        self.context = context

    def _expression(self, column: str) -> str:
        target = self.targets[column]
        if target.format:
            parsed = f"TRY_STRPTIME(CAST({ident(column)} AS VARCHAR), '{target.format.replace(chr(39), chr(39) * 2)}')"
            return f"CAST({parsed} AS {duckdb_type(target.type)})"
        return f"TRY_CAST({ident(column)} AS {duckdb_type(target.type)})"

    def _describe(self, column: str) -> str:
        """The target type, and the format a value must have: the format is what a user gets wrong."""
        target = self.targets[column]
        return f"{target.type} with format {target.format!r}" if target.format else target.type

    def apply(self, table: pa.Table) -> StepOutput:
        columns = list(self.targets)
        require_columns(table, columns, self.where)
        replaced = ", ".join(f"{self._expression(c)} AS {ident(c)}" for c in columns)
        flags = ", ".join(
            f"({ident(c)} IS NOT NULL AND {self._expression(c)} IS NULL) AS __bad_{i}" for i, c in enumerate(columns)
        )
        result = run_sql(self.context, table, f"SELECT * REPLACE ({replaced}), {flags} FROM chunk", self.where)
        bad = np.column_stack([result[f"__bad_{i}"].to_numpy(zero_copy_only=False) for i in range(len(columns))])
        result = result.drop_columns([f"__bad_{i}" for i in range(len(columns))])
        any_bad = bad.any(axis=1)
        if not any_bad.any():
            return StepOutput(result)
        rows = np.flatnonzero(any_bad)
        first = bad[rows].argmax(axis=1)
        failing = [columns[i] for i in first]
        originals = table.take(pa.array(rows))
        values = [originals[c][k].as_py() for k, c in enumerate(failing)]
        reasons = []
        for k, row in enumerate(rows):
            names = [columns[i] for i in np.flatnonzero(bad[row])]
            reasons.append("; ".join(f"cannot cast {originals[c][k].as_py()!r} in '{c}' to {self._describe(c)}" for c in names))
        rejected = Rejected(originals, "cast", failing, [None if v is None else str(v) for v in values], reasons)
        return StepOutput(result.filter(pc.invert(pa.array(any_bad))), [rejected])
