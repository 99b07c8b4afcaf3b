"""Steps that need every row of a load at once (deduplicate, detect_anomalies), between streaming and staging.

The row-by-row transforms and rules stream as usual; their output is collected here instead of
being staged, then each whole-load step runs on the collected rows, and the result is staged in
chunks. Memory here grows with the load (about the rows' Arrow size, plus 1.5 KB per row for
fuzzy matching's embeddings): whole-load steps are for loads that fit in memory.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator

import orjson
import pyarrow as pa

from etl_platform.ml.aggregate import Aggregator
from etl_platform.ml.anomaly import AnomalyDetector
from etl_platform.ml.dedup import CLUSTER, SIMILARITY, SURVIVOR_ROW, Deduplicator
from etl_platform.ml.embeddings import Embedder
from etl_platform.quality.audit import CheckOutcome
from etl_platform.quality.plan import anomaly_check
from etl_platform.sources.base import PROVENANCE, SOURCE_FILE, SOURCE_LINE, SOURCE_ROW
from etl_platform.spec.ml import AggregateStep, DeduplicateStep, DetectAnomaliesSpec, DetectAnomaliesStep
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.tables import data_columns
from etl_platform.warehouse.base import Warehouse
from etl_platform.warehouse.metadata import DEDUP_AUDIT_SCHEMA, META_SCHEMA


def anomaly_outcome(spec: DetectAnomaliesSpec, tagged: int, rows: int) -> CheckOutcome:
    """The anomaly_rate check: the share of tagged rows against its bound."""
    rate = tagged / rows if rows else 0.0
    return CheckOutcome(
        anomaly_check(spec),
        rate <= spec.max_rate,
        rows_checked=rows,
        rows_failed=tagged,
        detail=f"{tagged:,} of {rows:,} rows tagged ({rate:.2%}); see the anomaly, anomaly_score and anomaly_reason columns",
    )


class WholeLoad:
    def __init__(self, spec: PipelineSpec, embedder: Callable[[], Embedder]):
        self.spec = spec
        self.steps = [self._step(step, embedder) for step in spec.whole_load_transforms]
        self._tables: list[pa.Table] = []
        self.dropped: list[pa.Table] = []
        self.anomalies: tuple[int, int] | None = None  # (rows tagged, rows checked)
        self.rows_aggregated: int | None = None  # rows that entered the aggregate (which must be the last step)

    def _step(self, step: DeduplicateStep | DetectAnomaliesStep | AggregateStep, embedder: Callable[[], Embedder]):
        where = f"{self.spec.origin}: {next(iter(type(step).model_fields))}"
        if isinstance(step, DeduplicateStep):
            return Deduplicator(step.deduplicate, embedder() if step.deduplicate.fuzzy else None, where)
        if isinstance(step, DetectAnomaliesStep):
            return AnomalyDetector(step.detect_anomalies, where)
        return Aggregator(step.aggregate, where)

    def collect(self, table: pa.Table) -> None:
        self._tables.append(table.drop_columns([c for c in (SOURCE_ROW,) if c in table.column_names]))

    def finish(self, chunk_rows: int) -> Iterator[pa.Table]:
        """Run the steps on everything collected; yield the result in chunks, provenance dropped."""
        tables = [t for t in self._tables if t.num_columns]
        self._tables = []
        if not tables:
            return  # no rows reached the steps: nothing to publish (the load reports it)
        table = pa.concat_tables(tables, promote_options="permissive")
        score_column = self.spec.quality.score_column
        for step in self.steps:
            if isinstance(step, Deduplicator):
                scores = table[score_column].to_numpy() if score_column in table.column_names else None
                result = step.apply(table, scores)
                table = result.kept
                self.dropped.append(result.dropped)
            elif isinstance(step, AnomalyDetector):
                checked = len(table)
                table, tagged = step.apply(table)
                self.anomalies = (tagged, checked)
            else:
                self.rows_aggregated = len(table)
                table = step.apply(table.drop_columns([c for c in PROVENANCE if c in table.column_names]))
        table = table.drop_columns([c for c in PROVENANCE if c in table.column_names])
        for start in range(0, max(len(table), 1), chunk_rows):  # an empty result still reaches the destination
            yield table.slice(start, chunk_rows)

    @property
    def rows_dropped(self) -> int:
        return sum(len(t) for t in self.dropped)

    def record(self, warehouse: Warehouse, dataset: str, run_id: str) -> None:
        """Inside the publish transaction: one audit row per dropped duplicate, with the row itself."""
        now = datetime.datetime.now(datetime.UTC)
        audit_columns = (CLUSTER, SURVIVOR_ROW, SIMILARITY)
        for dropped in self.dropped:
            if not len(dropped):
                continue
            records = dropped.select([c for c in data_columns(dropped) if c not in audit_columns]).to_pylist()
            rows = [
                {
                    "pipeline": self.spec.id,
                    "dataset": dataset,
                    "run_id": run_id,
                    "cluster": cluster,
                    "similarity": similarity,
                    "source_file": source,
                    "source_line": line,
                    "record": orjson.dumps(record, default=str).decode(),
                    "deduplicated_at": now,
                }
                for cluster, similarity, source, line, record in zip(
                    dropped[CLUSTER].to_pylist(),
                    dropped[SIMILARITY].to_pylist(),
                    _provenance(dropped, SOURCE_FILE, pa.string()),
                    _provenance(dropped, SOURCE_LINE, pa.int64()),
                    records,
                    strict=True,
                )
            ]
            warehouse.bulk_insert(warehouse.relation(META_SCHEMA, "dedup_audit"), pa.Table.from_pylist(rows, DEDUP_AUDIT_SCHEMA))


def _provenance(table: pa.Table, name: str, kind: pa.DataType) -> list:
    return table[name].cast(kind).to_pylist() if name in table.column_names else [None] * len(table)
