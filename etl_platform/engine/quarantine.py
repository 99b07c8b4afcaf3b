"""Collect a run's rejected rows and malformed lines as quarantine records.

A quarantine record keeps everything needed to understand and replay a failure: the pipeline,
run, stage and rule, the column and value, the reason, where the row came from, and the whole
original row as JSON. Records spill to a local Arrow IPC file as they come, so memory stays
bounded, and reach the warehouse at publish, or on their own when a quality gate stops the publish
(the load is rolled back, its failing rows are kept).
"""

from __future__ import annotations

import datetime
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pyarrow as pa

from etl_platform.sources.base import PROVENANCE, SOURCE_FILE, SOURCE_LINE, SOURCE_ROW, BadLine
from etl_platform.transforms import Rejected
from etl_platform.warehouse.metadata import QUARANTINE_SCHEMA


def visible(value: str | None) -> str | None:
    """A value as the quarantine shows it: a NUL byte, which no warehouse text column holds, as \\x00
    (the record keeps the exact row, JSON-escaped, for a replay)."""
    return value.replace("\x00", "\\x00") if isinstance(value, str) else value


class Quarantine:
    def __init__(self, pipeline: str, dataset: str, run_id: str, tenant: str | None = None):
        self.pipeline, self.dataset, self.run_id, self.tenant = pipeline, dataset, run_id, tenant
        self._folder = tempfile.TemporaryDirectory(prefix="etl-quarantine-")
        self.path = Path(self._folder.name) / "quarantine.arrow"
        self._writer: pa.ipc.RecordBatchFileWriter | None = None
        self._writing = False
        self.count = 0
        self.by_rule: dict[str, int] = {}
        self.examples: dict[str, str] = {}  # each rule's first reason, for messages

    def _stage(self, stage: str, rule: str, **per_row: list) -> None:
        """Spill records; `per_row` holds column_name, value, reason, source_file, source_line, record."""
        n = len(per_row["reason"])
        constant = {
            "pipeline": self.pipeline,
            "dataset": self.dataset,
            "run_id": self.run_id,
            "stage": stage,
            "rule": rule,
            "tenant": self.tenant,
        }
        now = datetime.datetime.now(datetime.UTC)
        identity = {"quarantine_id": [uuid.uuid4().hex for _ in range(n)], "quarantined_at": [now] * n}
        columns = {**{name: [value] * n for name, value in constant.items()}, **per_row, **identity}
        table = pa.table({name: columns[name] for name in QUARANTINE_SCHEMA.names}, schema=QUARANTINE_SCHEMA)
        if self._writer is None:
            self._writer = pa.ipc.new_file(self.path, QUARANTINE_SCHEMA)
            self._writing = True
        self._writer.write_table(table)
        self.count += n
        self.by_rule[rule] = self.by_rule.get(rule, 0) + n
        if n:
            self.examples.setdefault(rule, per_row["reason"][0])

    def add_rejected(self, stage: str, rejected: Rejected, source_chunk: pa.Table) -> None:
        """Quarantine rejected rows; each record is the row as the source gave it, so replay can rerun it."""
        rows = rejected.rows
        originals = source_chunk.take(rows[SOURCE_ROW])
        data = originals.drop_columns([c for c in PROVENANCE if c in originals.column_names]).to_pylist()
        self._stage(
            stage,
            rejected.rule,
            column_name=rejected.columns,
            value=[visible(v) for v in rejected.values],
            reason=rejected.reasons,
            source_file=rows[SOURCE_FILE].cast(pa.string()).to_pylist(),
            source_line=rows[SOURCE_LINE].to_pylist(),
            record=[orjson.dumps(r, default=str).decode() for r in data],
        )

    def add_bad_lines(self, lines: list[BadLine]) -> None:
        self._stage(
            "source",
            "malformed_line",
            column_name=[None] * len(lines),
            value=[visible(line.text) for line in lines],
            reason=[line.reason for line in lines],
            source_file=[line.source_file for line in lines],
            source_line=[line.line for line in lines],
            record=[orjson.dumps({"raw": line.text}).decode() for line in lines],
        )

    def batches(self) -> Iterator[pa.Table]:
        """Every record, read back from the spill file in batches (writing ends at the first call)."""
        if self._writer is None:
            return
        self._close_writer()
        with pa.memory_map(str(self.path)) as source:
            reader = pa.ipc.open_file(source)
            for index in range(reader.num_record_batches):
                yield pa.Table.from_batches([reader.get_batch(index)])

    def _close_writer(self) -> None:
        if self._writing:
            self._writer.close()
            self._writing = False

    def discard(self) -> None:
        self._close_writer()
        self._folder.cleanup()
