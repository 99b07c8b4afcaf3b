"""Enrich rows from another published dataset by key (a left join that never adds rows)."""

from __future__ import annotations

import itertools

import pyarrow as pa

from etl_platform.errors import TransformError
from etl_platform.spec.steps import LookupStep
from etl_platform.tables import ident, require_columns
from etl_platform.transforms.base import StepOutput, TransformContext, run_sql

_counter = itertools.count()


class Lookup:
    """The dataset is read once per run; its keys must be unique, or rows would multiply."""

    def __init__(self, step: LookupStep, where: str, context: TransformContext):
        spec = step.lookup
        self.keys = spec.key_pairs()
        self.added = spec.added_columns()
        self.where = where
        self.context = context
        self.name = f"lookup_{next(_counter)}"
        reference = context.read_dataset(spec.dataset, [*self.keys.values(), *self.added])
        counts = reference.group_by(list(self.keys.values())).aggregate([([], "count_all")])
        duplicated = counts.filter(pa.compute.greater(counts["count_all"], 1))
        if len(duplicated):
            example = {k: duplicated[k][0].as_py() for k in self.keys.values()}
            raise TransformError(
                f"{where}: lookup keys {list(self.keys.values())} are not unique in {spec.dataset} "
                f"({len(duplicated)} duplicated, e.g. {example}); joining would duplicate rows"
            )
        context.connection.register("reference", reference)
        context.connection.execute(f"CREATE TABLE {self.name} AS SELECT * FROM reference")
        context.connection.unregister("reference")

    def apply(self, table: pa.Table) -> StepOutput:
        require_columns(table, list(self.keys), self.where)
        numbered = table.append_column("__row", pa.array(range(len(table)), pa.int64()))
        condition = " AND ".join(f"chunk.{ident(a)} = l.{ident(b)}" for a, b in self.keys.items())
        added = ", ".join(f"l.{ident(src)} AS {ident(dst)}" for src, dst in self.added.items())
        sql = f"SELECT chunk.*, {added} FROM chunk LEFT JOIN {self.name} l ON {condition} ORDER BY chunk.__row"
        return StepOutput(run_sql(self.context, numbered, sql, self.where).drop_columns(["__row"]))
