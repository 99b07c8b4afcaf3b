"""Steps that need every row of a load at once (deduplicate, detect_anomalies), between streaming and staging.

The row-by-row transforms and rules stream as usual; their output is spilled to disk here
(engine.spill) instead of being staged, then each whole-load step reads the spill and spills its
result, and the last result is staged in chunks (docs/architecture.md, Contracts 1). aggregate
(DuckDB within a memory limit) and detect_anomalies (fitted on a bounded sample, scored batch by
batch) hold a bounded part of the load; deduplicate holds the compared columns of every row (and
1.5 KB per row of embeddings where it compares by meaning), scores pairs in bounded batches, and
joins the survivors back chunk by chunk (docs/pipeline-spec.md, "Whole-load steps").
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Callable, Iterator

import numpy as np
import orjson
import pyarrow as pa

from etl_platform.engine.spill import Spill
from etl_platform.ml.aggregate import Aggregator
from etl_platform.ml.anomaly import AnomalyDetector
from etl_platform.ml.dedup import CLUSTER, EXPLANATION, SIMILARITY, SURVIVOR_ROW, Deduplicator, row_quality
from etl_platform.ml.embeddings import Embedder
from etl_platform.quality.audit import CheckOutcome
from etl_platform.quality.plan import anomaly_check
from etl_platform.sources.base import PROVENANCE, SOURCE_FILE, SOURCE_LINE, SOURCE_ROW
from etl_platform.spec.ml import AggregateStep, DeduplicateStep, DetectAnomaliesSpec, DetectAnomaliesStep
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.tables import data_columns
from etl_platform.warehouse.base import Warehouse
from etl_platform.warehouse.metadata import DEDUP_AUDIT_SCHEMA, META_SCHEMA

# detect_anomalies fits on at most this many rows of a load (8 bytes per row and column), then
# scores every chunk with what it learnt; a load this size or smaller is fitted on all its rows.
ANOMALY_SAMPLE_ROWS = 100_000


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
    def __init__(
        self,
        spec: PipelineSpec,
        embedder: Callable[[], Embedder],
        published: Callable[[list[str]], pa.Table | None],
        chunk_rows: int,
    ):
        self.spec = spec
        self.chunk_rows = chunk_rows
        self.published = published  # the destination's rows (those columns), None before its first load
        self.steps = [self._step(step, embedder) for step in spec.whole_load_transforms]
        self._spill: Spill | None = None
        self.dropped: list[pa.Table] = []
        self.anomalies: tuple[int, int] | None = None  # (rows tagged, rows checked)
        self.rows_aggregated: int | None = None  # rows that entered the aggregate (which must be the last step)
        self.dedup_models: list[dict] = []  # per deduplicate step: blocking counts and estimated parameters

    def _step(self, step: DeduplicateStep | DetectAnomaliesStep | AggregateStep, embedder: Callable[[], Embedder]):
        where = f"{self.spec.origin}: {next(iter(type(step).model_fields))}"
        if isinstance(step, DeduplicateStep):
            return Deduplicator(step.deduplicate, embedder() if step.deduplicate.fuzzy else None, where)
        if isinstance(step, DetectAnomaliesStep):
            return AnomalyDetector(step.detect_anomalies, where)
        return Aggregator(step.aggregate, where)

    def collect(self, table: pa.Table) -> None:
        """Spill a chunk to disk (engine.spill): the load's rows are never all in memory here."""
        if self._spill is None:
            self._spill = Spill(self.chunk_rows)
        self._spill.write(table.drop_columns([c for c in (SOURCE_ROW,) if c in table.column_names]))

    def finish(self) -> Iterator[pa.Table]:
        """Run the steps on everything collected; yield the result in chunks, provenance dropped."""
        spill, self._spill = self._spill, None
        if spill is None or spill.schema is None:
            return  # no rows reached the steps: nothing to publish (the load reports it)
        try:
            for step in self.steps:
                spill = self._run(step, spill)
            tables = (pa.Table.from_batches([batch]) for batch in spill.batches())
            for table in itertools.chain(tables, [spill.schema.empty_table()] if not spill.num_rows else []):
                yield table.drop_columns([c for c in PROVENANCE if c in table.column_names])
        finally:
            spill.close()

    def _run(self, step: Deduplicator | AnomalyDetector | Aggregator, spill: Spill) -> Spill:
        """One step from spilled rows to spilled rows: aggregate and detect_anomalies batch by batch,
        deduplicate on the compared columns, then chunk by chunk (docs/architecture.md, Contracts 1)."""
        out = Spill(self.chunk_rows)
        if isinstance(step, Aggregator):
            self.rows_aggregated = spill.num_rows
            for batch in step.batches(_without_provenance(spill.reader()), spill.folder):
                out.write(batch)
        elif isinstance(step, Deduplicator):
            self._deduplicate(step, spill, out)
        else:
            fitted = step.fit(_sample(step, spill))
            tagged = 0
            for batch in spill.batches():
                table, tagged_here = step.score(fitted, pa.Table.from_batches([batch]))
                out.write(table)
                tagged += tagged_here
            self.anomalies = (tagged, spill.num_rows)
        spill.close()
        return out

    def _deduplicate(self, step: Deduplicator, spill: Spill, out: Spill) -> None:
        """Decide on the compared columns alone, then take the kept and dropped rows chunk by chunk from the spill.

        In memory: the compared and provenance columns of every row (and the score column, or
        each row's completeness, 8 bytes), the step's bounded pair batches (ml.blocking), and the
        dropped rows, which the audit records whole; the other columns are read a batch at a time.
        """
        score_column = self.spec.quality.score_column
        names = spill.schema.names
        compared = [c for c in dict.fromkeys([*step.columns(), SOURCE_FILE, SOURCE_LINE]) if c in names]
        if score_column in names:
            quality = spill.read_columns([score_column])[score_column].to_numpy()
        else:
            quality = np.concatenate([row_quality(pa.Table.from_batches([b])) for b in spill.batches()] or [np.zeros(0)])
        theirs = self.published(step.columns()) if step.spec.against_target else None
        decision = step.decide(spill.read_columns(compared), quality, theirs)
        dropped, offset = [], 0
        for batch in spill.batches():
            dropped.append(step.dropped_rows(decision, pa.Table.from_batches([batch]), offset))
            offset += len(batch)
        removed = pa.concat_tables(dropped, promote_options="permissive") if dropped else pa.table({})
        offset = 0
        for batch in spill.batches():
            out.write(step.kept_rows(decision, pa.Table.from_batches([batch]), offset, removed))
            offset += len(batch)
        self.dropped.append(removed)
        self.dedup_models.append(decision.model)

    def discard(self) -> None:
        """Remove the spill of a load that failed before its steps ran (finish removes its own)."""
        if self._spill is not None:
            self._spill.close()
            self._spill = None

    @property
    def rows_dropped(self) -> int:
        return sum(len(t) for t in self.dropped)

    def record(self, warehouse: Warehouse, dataset: str, run_id: str) -> None:
        """Inside the publish transaction: one audit row per dropped duplicate, with the row itself."""
        now = datetime.datetime.now(datetime.UTC)
        audit_columns = (CLUSTER, SURVIVOR_ROW, SIMILARITY, EXPLANATION)
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
                    "explanation": explanation,
                }
                for cluster, similarity, explanation, source, line, record in zip(
                    dropped[CLUSTER].to_pylist(),
                    dropped[SIMILARITY].to_pylist(),
                    dropped[EXPLANATION].to_pylist(),
                    _provenance(dropped, SOURCE_FILE, pa.string()),
                    _provenance(dropped, SOURCE_LINE, pa.int64()),
                    records,
                    strict=True,
                )
            ]
            warehouse.bulk_insert(warehouse.relation(META_SCHEMA, "dedup_audit"), pa.Table.from_pylist(rows, DEDUP_AUDIT_SCHEMA))


def _sample(step: AnomalyDetector, spill: Spill) -> np.ndarray:
    """The anomaly columns of ANOMALY_SAMPLE_ROWS rows drawn evenly (seeded) from the spill; all of a smaller load."""
    share = min(1.0, ANOMALY_SAMPLE_ROWS / max(spill.num_rows, 1))
    draw = np.random.default_rng(0)
    parts = []
    for batch in spill.batches():
        values = step.matrix(pa.Table.from_batches([batch]))
        parts.append(values if share == 1.0 else values[draw.random(len(values)) < share])
    return np.vstack(parts)


def _without_provenance(reader: pa.RecordBatchReader) -> pa.RecordBatchReader:
    """The stream without its provenance columns, which the aggregate must not group or see."""
    kept = [f for f in reader.schema if f.name not in PROVENANCE]
    names = [f.name for f in kept]
    return pa.RecordBatchReader.from_batches(pa.schema(kept), (b.select(names) for b in reader))


def _provenance(table: pa.Table, name: str, kind: pa.DataType) -> list:
    return table[name].cast(kind).to_pylist() if name in table.column_names else [None] * len(table)
