"""Transforms and row rules over a source's chunks: on threads, handed back in source order.

DuckDB and pyarrow release the GIL, so two transform threads use both cores; the order is kept
so that staging, progress and quarantine line numbers follow the source.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pyarrow as pa
import pyarrow.compute as pc

from etl_platform.errors import TransformError
from etl_platform.quality.validator import RuleStats
from etl_platform.sources import PROVENANCE, Source, SourceChunk
from etl_platform.sources.base import numbered
from etl_platform.tracing import NO_TRACER, Context, Tracer, traced_iteration
from etl_platform.transforms import ChainOutput, Rejected, TransformChain
from etl_platform.warehouse import Warehouse
from etl_platform.warehouse.base import CHANGE_DELETED

# Chunks transformed at once.
TRANSFORM_THREADS = 2

Transformed = tuple[ChainOutput, dict[str, RuleStats]]


class ChunkTransformer:
    """Transforms, then row-level quality rules, then the rows the destination cannot store, for one
    chunk (called on a transform thread)."""

    def __init__(
        self,
        chain: TransformChain,
        validators: list,
        unstorable: Callable[[pa.Table], tuple[pa.Table, Rejected | None]] | None = None,
        tracer: Tracer = NO_TRACER,
    ):
        self.chain = chain
        self.validators = validators
        self.unstorable = unstorable
        self.tracer = tracer
        self.trace_parent: Context | None = None  # the load's span: transform threads have no current span

    def __call__(self, table: pa.Table) -> Transformed:
        with self.tracer.start_as_current_span("transform", context=self.trace_parent, attributes={"rows": len(table)}):
            output = self.chain.apply(table)
        with self.tracer.start_as_current_span("rules", context=self.trace_parent, attributes={"rows": len(output.table)}):
            return self._judge(output)

    def _judge(self, output: ChainOutput) -> Transformed:
        """Row rules on the transformed rows, then the rows the destination cannot store."""
        stats: dict[str, RuleStats] = {}
        deletes = None
        if self.validators and CHANGE_DELETED in output.table.column_names:
            # A delete of change data carries only the old key: row rules judge the rows a change leaves.
            gone = pc.fill_null(output.table[CHANGE_DELETED], False)
            deletes, output.table = output.table.filter(gone), output.table.filter(pc.invert(gone))
        for validator in self.validators:
            checked, seen = validator.apply(output.table)
            output.table = checked.table
            output.rejected += [("quality", rejected) for rejected in checked.rejected]
            stats.update(seen)
        if deletes is not None and len(deletes):  # a merge of change data orders rows by LSN, not by position
            output.table = pa.concat_tables([output.table, deletes], promote_options="default")
        if self.unstorable is not None:
            output.table, refused = self.unstorable(output.table)
            if refused is not None:
                output.rejected.append(("destination", refused))
        return output, stats


def transformed_chunks(
    source: Source,
    chunk_rows: int,
    threads: int,
    transform: Callable[[pa.Table], Transformed],
    tracer: Tracer = NO_TRACER,
) -> Iterator[tuple[SourceChunk, Transformed]]:
    """Each chunk of `source` with its transformed output, `threads` chunks in flight, in source order;
    reading each chunk is a `read` span of `tracer`."""
    with ThreadPoolExecutor(threads, thread_name_prefix="etl-transform") as pool:
        in_flight: deque[tuple[SourceChunk, Future]] = deque()
        for chunk in traced_iteration(tracer, "read", source.read(chunk_rows)):
            chunk.table = numbered(chunk.table)
            if any(name not in PROVENANCE for name in chunk.table.column_names):
                work = pool.submit(transform, chunk.table)
            else:  # no data columns: nothing to transform
                work = Future()
                work.set_result((ChainOutput(chunk.table), {}))
            in_flight.append((chunk, work))
            if len(in_flight) > threads:
                done, future = in_flight.popleft()
                yield done, future.result()
        while in_flight:
            done, future = in_flight.popleft()
            yield done, future.result()


def dataset_reader(warehouse: Warehouse, origin: str) -> Callable[[str, list[str]], pa.Table]:
    """Read columns of a published dataset (for lookups), with an error that says what to run."""

    def read(dataset: str, columns: list[str]) -> pa.Table:
        schema, table = warehouse.split(dataset)
        existing = warehouse.columns(schema, table)
        if existing is None:
            raise TransformError(
                f"{origin}: lookup dataset {dataset} does not exist yet; run the pipeline that publishes it first",
                transient=True,  # `etl validate` made sure something publishes it: it passes once that has run
            )
        missing = [c for c in columns if c not in existing]
        if missing:
            raise TransformError(f"{origin}: lookup dataset {dataset} has no column(s) {missing}; it has {list(existing)}")
        return warehouse.read_arrow(f"SELECT {', '.join(map(warehouse.quote, columns))} FROM {warehouse.target(dataset)}")

    return read
