"""Dry run: read a sample and show what each stage makes of it, writing nothing."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from etl_platform.engine.chunks import dataset_reader
from etl_platform.engine.environment import Environment
from etl_platform.engine.inputs import plan_input
from etl_platform.engine.options import RunOptions
from etl_platform.sources import PROVENANCE
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.transforms import TransformChain, TransformContext
from etl_platform.warehouse import open_warehouse


@dataclass(frozen=True)
class StageView:
    name: str
    table: pa.Table
    rejected: int = 0
    filtered: int = 0

    @property
    def data(self) -> pa.Table:
        return self.table.drop_columns([c for c in PROVENANCE if c in self.table.column_names])


def dry_run(spec: PipelineSpec, environment: Environment, sample_rows: int = 1_000) -> list[StageView]:
    """The first `sample_rows` rows of the source, then the output of every transform in turn."""
    warehouse = open_warehouse(environment.warehouse_url, environment.breakers)
    try:
        # Every matching file and every row, whatever incremental state says: a preview writes no state.
        source = plan_input(spec, environment, warehouse, RunOptions(full_refresh=True)).source
        sample = next((c.table for c in source.read(max(sample_rows, 1_000)) if len(c.table)), None)
        if sample is None:
            return [StageView("source (no rows)", pa.table({}))]
        sample = sample.slice(0, sample_rows)
        stages = [StageView(f"source ({spec.source.type})", sample)]
        context = TransformContext(
            spec.origin, dataset_reader(warehouse, spec.origin), environment.embedder, environment.secrets, environment.breakers
        )
        chain = TransformChain(spec.streaming_transforms, context)  # whole-load steps need every row: not previewed
        table = sample
        for name, step in zip(chain.names, chain.steps, strict=True):
            output = step.apply(table)
            table = output.table
            stages.append(StageView(name, table, sum(len(r.rows) for r in output.rejected), output.filtered))
        context.close()
        return stages
    finally:
        warehouse.close()
