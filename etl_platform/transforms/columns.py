"""Select, rename, null handling and string normalization: column housekeeping."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from etl_platform.errors import TransformError
from etl_platform.sources.base import PROVENANCE
from etl_platform.spec.steps import DropNullsStep, FillNullsStep, NormalizeStep, RenameStep, SelectStep
from etl_platform.tables import ident, require_columns
from etl_platform.transforms.base import StepOutput, TransformContext, run_sql


class Select:
    def __init__(self, step: SelectStep, where: str, context: TransformContext):
        self.columns = step.select
        self.where = where

    def apply(self, table: pa.Table) -> StepOutput:
        require_columns(table, self.columns, self.where)
        return StepOutput(table.select([*self.columns, *(c for c in PROVENANCE if c in table.column_names)]))


class Rename:
    def __init__(self, step: RenameStep, where: str, context: TransformContext):
        self.mapping = step.rename
        self.where = where

    def apply(self, table: pa.Table) -> StepOutput:
        require_columns(table, list(self.mapping), self.where)
        names = [self.mapping.get(n, n) for n in table.column_names]
        clashes = sorted({n for n in names if names.count(n) > 1})
        if clashes:
            raise TransformError(f"{self.where}: renaming would create duplicate column(s) {clashes}")
        return StepOutput(table.rename_columns(names))


class DropNulls:
    """Remove rows with a null in any listed column; they count as filtered by this rule."""

    def __init__(self, step: DropNullsStep, where: str, context: TransformContext):
        self.columns = step.drop_nulls
        self.where = where

    def apply(self, table: pa.Table) -> StepOutput:
        require_columns(table, self.columns, self.where)
        keep = (
            pc.and_(*[pc.is_valid(table[c]) for c in self.columns])
            if len(self.columns) > 1
            else pc.is_valid(table[self.columns[0]])
        )
        kept = table.filter(keep)
        return StepOutput(kept, filtered=len(table) - len(kept))


class FillNulls:
    def __init__(self, step: FillNullsStep, where: str, context: TransformContext):
        self.values = step.fill_nulls
        self.where = where

    def apply(self, table: pa.Table) -> StepOutput:
        require_columns(table, list(self.values), self.where)
        for column, value in self.values.items():
            kind = table.schema.field(column).type
            try:
                fill = pa.scalar(value).cast(kind)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise TransformError(
                    f"{self.where}: fill value {value!r} does not fit column '{column}' of type {kind}"
                ) from None
            table = table.set_column(table.schema.get_field_index(column), column, pc.fill_null(table[column], fill))
        return StepOutput(table)


_NORMALIZE_SQL = {
    "trim": "trim({})",
    "lower": "lower({})",
    "upper": "upper({})",
    "collapse_whitespace": "regexp_replace({}, '\\s+', ' ', 'g')",
    "strip_accents": "strip_accents({})",
}


class Normalize:
    def __init__(self, step: NormalizeStep, where: str, context: TransformContext):
        self.operations = step.normalize
        self.where = where
        self.context = context

    def apply(self, table: pa.Table) -> StepOutput:
        require_columns(table, list(self.operations), self.where)
        replaced = []
        for column, operations in self.operations.items():
            if not pa.types.is_string(table.schema.field(column).type):
                raise TransformError(f"{self.where}: normalize applies to text; '{column}' is {table.schema.field(column).type}")
            expression = ident(column)
            for operation in operations:
                expression = _NORMALIZE_SQL[operation].format(expression)
            replaced.append(f"{expression} AS {ident(column)}")
        return StepOutput(run_sql(self.context, table, f"SELECT * REPLACE ({', '.join(replaced)}) FROM chunk", self.where))
