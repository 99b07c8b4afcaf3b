"""Steps that need every row of a load at once (deduplicate), run between streaming and staging.

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

from etl_platform.ml.dedup import CLUSTER, SIMILARITY, SURVIVOR_ROW, Deduplicator
from etl_platform.ml.embeddings import Embedder
from etl_platform.sources.base import PROVENANCE, SOURCE_FILE, SOURCE_LINE, SOURCE_ROW
from etl_platform.spec.models import DeduplicateStep
from etl_platform.transforms.base import data_columns
from etl_platform.warehouse.base import DEDUP_AUDIT_SCHEMA, META_SCHEMA, Warehouse


class WholeLoad:
    def __init__(self, steps: list[DeduplicateStep], embedder: Callable[[], Embedder]):
        self.deduplicators = [Deduplicator(step.deduplicate, embedder() if step.deduplicate.fuzzy else None) for step in steps]
        self._tables: list[pa.Table] = []
        self.dropped: list[pa.Table] = []
        self.clusters = 0

    def collect(self, table: pa.Table) -> None:
        self._tables.append(table.drop_columns([c for c in (SOURCE_ROW,) if c in table.column_names]))

    def finish(self, chunk_rows: int) -> Iterator[pa.Table]:
        """Run the steps on everything collected; yield the result in chunks, provenance dropped."""
        tables = [t for t in self._tables if t.num_columns]
        self._tables = []
        if not tables:
            return
        table = pa.concat_tables(tables, promote_options="permissive")
        for deduplicator in self.deduplicators:
            result = deduplicator.apply(table)
            table = result.kept
            self.dropped.append(result.dropped)
            self.clusters += result.clusters
        table = table.drop_columns([c for c in PROVENANCE if c in table.column_names])
        for start in range(0, len(table), chunk_rows):
            yield table.slice(start, chunk_rows)

    @property
    def rows_dropped(self) -> int:
        return sum(len(t) for t in self.dropped)

    def record(self, warehouse: Warehouse, pipeline: str, dataset: str, run_id: str) -> None:
        """Inside the publish transaction: one audit row per dropped duplicate, with the row itself."""
        now = datetime.datetime.now(datetime.UTC)
        for dropped in self.dropped:
            if not len(dropped):
                continue
            audit_columns = (CLUSTER, SURVIVOR_ROW, SIMILARITY)
            records = dropped.select([c for c in data_columns(dropped) if c not in audit_columns]).to_pylist()
            rows = [
                {
                    "pipeline": pipeline,
                    "dataset": dataset,
                    "run_id": run_id,
                    "cluster": cluster,
                    "similarity": similarity,
                    "source_file": str(source) if source is not None else None,
                    "source_line": line,
                    "record": orjson.dumps(record, default=str).decode(),
                    "deduplicated_at": now,
                }
                for cluster, similarity, source, line, record in zip(
                    dropped[CLUSTER].to_pylist(),
                    dropped[SIMILARITY].to_pylist(),
                    _column(dropped, SOURCE_FILE),
                    _column(dropped, SOURCE_LINE),
                    records,
                    strict=True,
                )
            ]
            warehouse.bulk_insert(warehouse.relation(META_SCHEMA, "dedup_audit"), pa.Table.from_pylist(rows, DEDUP_AUDIT_SCHEMA))


def _column(table: pa.Table, name: str) -> list:
    return (
        table[name].cast(pa.string() if name == SOURCE_FILE else pa.int64()).to_pylist()
        if name in table.column_names
        else [None] * len(table)
    )
