"""Dry run: read a sample and show what each stage makes of it, writing nothing.

The last stage is the quality rules: row rules judge the sample (their failing rows are counted
as rejected) and every rule's columns are checked against the data, so a rule on a column the
data lacks fails here (`etl run --dry-run`, `etl validate --data`) rather than in a run.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from etl_platform.engine.chunks import dataset_reader
from etl_platform.engine.environment import Environment
from etl_platform.engine.inputs import plan_input
from etl_platform.engine.options import RunOptions
from etl_platform.quality.audit import DatasetAudit
from etl_platform.quality.validator import RowValidator
from etl_platform.sources import PROVENANCE
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.transforms import StepOutput, TransformChain, TransformContext
from etl_platform.warehouse import open_warehouse


@dataclass(frozen=True)
class StageView:
    name: str
    table: pa.Table
    rejected: int = 0
    filtered: int = 0
    first_reason: str | None = None  # of the rejected rows, for messages

    @property
    def data(self) -> pa.Table:
        return self.table.drop_columns([c for c in PROVENANCE if c in self.table.column_names])


def preview_refusal(spec: PipelineSpec) -> str | None:
    """Why reading a sample of this pipeline's input would not be a preview, or None when it would be.

    A preview writes no state, so it must not read a source whose reading is itself a change: a
    change-capture preview re-creates the replication slot (the changes since the saved LSN would
    be lost), and a stream preview counts as a delivery of its messages (enough of them dead-letter
    good messages).
    """
    if spec.source.type == "frame":
        return "its rows come from a Python function, which only a run calls"
    if spec.source.type == "postgres_cdc":
        return "reading the slot outside a run would re-create it and lose the changes since the saved LSN"
    if spec.source.type == "mariadb_cdc":
        return "its rows are a snapshot or the binlog after the saved GTID, which only a run reads in order"
    if spec.source.type == "stream":
        return "reading the stream outside a run would count as a delivery of its messages"
    if spec.partitions is not None and spec.partition is None:
        return "it is partitioned, and a preview of one partition is not built yet (load one with etl backfill)"
    return None


def dry_run(spec: PipelineSpec, environment: Environment, sample_rows: int = 1_000) -> list[StageView]:
    """The first `sample_rows` rows of the source, then the output of every transform in turn."""
    refusal = preview_refusal(spec)
    if refusal is not None:
        return [StageView(f"source (not read: {refusal})", pa.table({}))]
    warehouse = open_warehouse(environment.warehouse_url, environment.breakers, environment.secrets)
    try:
        # Every matching file and every row, whatever incremental state says: a preview writes no state.
        planned = plan_input(spec, environment, warehouse, RunOptions(full_refresh=True))
        if planned.source is None:
            return [StageView(f"source (no input: {planned.nothing_new})", pa.table({}))]
        source = planned.source
        sample = next((c.table for c in source.read(max(sample_rows, 1_000)) if len(c.table)), None)
        if sample is None:
            return [StageView("source (no rows)", pa.table({}))]
        sample = sample.slice(0, sample_rows)
        stages = [StageView(f"source ({spec.source.type})", sample)]
        context = TransformContext(
            spec.origin, dataset_reader(warehouse, spec.origin), environment.embedder, environment.secrets, environment.breakers
        )
        chain = TransformChain(spec.streaming_transforms, context, spec.pii, spec.tenancy)  # whole-load steps: not previewed
        table = sample
        for name, step in zip(chain.names, chain.steps, strict=True):
            output = step.apply(table)
            table = output.table
            rejected, reason = _rejections(output)
            stages.append(StageView(name, table, rejected, output.filtered, reason))
        context.close()
        return stages + _judge_rules(spec, table)
    finally:
        warehouse.close()


def _judge_rules(spec: PipelineSpec, table: pa.Table) -> list[StageView]:
    """The rules on the transformed sample: a rule's missing column (or wrong type) raises TransformError."""
    quality = spec.quality
    DatasetAudit(quality.rules, spec.destination.dataset, spec.origin).observe(table)
    if not any(rule.is_row_rule for rule in quality.rules) and not quality.score_column:
        return []
    output, _ = RowValidator(quality.rules, f"{spec.origin}: quality", quality.score_column).apply(table)
    return [StageView("quality (row rules)", output.table, *_rejections(output))]


def _rejections(output: StepOutput) -> tuple[int, str | None]:
    """How many rows a stage rejected, and the first one's reason."""
    return sum(len(r.rows) for r in output.rejected), next((r.reasons[0] for r in output.rejected if r.reasons), None)
