"""Replay quarantined rows: back through the pipeline's transforms and quality rules into its target.

Each quarantine record holds the row as the source gave it, so a replay reruns exactly what a load
would. In the publish transaction the replayed records leave the quarantine; rows that fail
again are quarantined anew with their new reason. Replaying is idempotent: once replayed, a
record is gone, and the same selection finds nothing. A malformed line replays once its record
has been edited into a JSON object of its fields.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import orjson
import pyarrow as pa

from etl_platform.engine.options import RunOptions, given
from etl_platform.engine.report import LoadReport
from etl_platform.engine.runner import Environment, run_pipeline
from etl_platform.fingerprint import ContentHash
from etl_platform.sources.base import SOURCE_FILE, BadLine, SourceChunk
from etl_platform.sources.json import records_to_table
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.warehouse import Warehouse, open_warehouse
from etl_platform.warehouse.metadata import META_SCHEMA, ensure_metadata
from etl_platform.warehouse.publish import remove_from_quarantine


@dataclass(frozen=True)
class QuarantineSelection:
    """Which quarantined rows: one pipeline's, optionally narrowed to a rule and a run."""

    pipeline: str | None = None
    rule: str | None = None
    run_id: str | None = None

    def where(self) -> tuple[str, tuple]:
        clauses = [
            (column, value)
            for column, value in (("pipeline", self.pipeline), ("rule", self.rule), ("run_id", self.run_id))
            if value
        ]
        if not clauses:
            return "", ()
        return " WHERE " + " AND ".join(f"{c} = ?" for c, _ in clauses), tuple(v for _, v in clauses)


@dataclass(frozen=True)
class ReplayedRecords:
    """A replay's checkpoint: its records leave the quarantine in the publish transaction."""

    ids: list[str]

    def save(self, target: Warehouse, pipeline: str, run_id: str) -> None:
        remove_from_quarantine(target, self.ids)


class ReplaySource:
    """Quarantine records as a source; provenance keeps each row's original file and line."""

    def __init__(self, records: list[dict]):
        self.records = records
        self.ids = sorted(r["quarantine_id"] for r in records)

    def checkpoint(self) -> ReplayedRecords:
        return ReplayedRecords(self.ids)

    def acknowledge(self, checkpoint: ReplayedRecords) -> None:
        """The quarantine is in the warehouse: the publish transaction already removed the records."""

    def describe(self) -> list[str]:
        return [f"quarantine replay of {len(self.records)} rows"]

    def total_bytes(self) -> None:
        return None

    def fingerprint(self) -> str:
        digest = ContentHash()
        for quarantine_id in self.ids:
            digest.update(quarantine_id.encode())
        return digest.hexdigest()

    def read(self, chunk_rows: int) -> Iterator[SourceChunk]:
        for start in range(0, max(len(self.records), 1), chunk_rows):
            batch = self.records[start : start + chunk_rows]
            rows, files, lines, bad = [], [], [], []
            for record in batch:
                data = orjson.loads(record["record"])
                if set(data) == {"raw"}:
                    reason = "still malformed: edit its record into a JSON object of its fields to replay it"
                    bad.append(BadLine(record["source_file"], record["source_line"], data["raw"], reason))
                    continue
                rows.append(data)
                files.append(record["source_file"])
                lines.append(record["source_line"])
            table = records_to_table(rows, "", lines)
            file_column = table.schema.get_field_index(SOURCE_FILE)
            table = table.set_column(file_column, SOURCE_FILE, pa.array(files, pa.string()).dictionary_encode())
            yield SourceChunk(table, bad_lines=bad)


def quarantined(warehouse: Warehouse, selection: QuarantineSelection) -> list[dict]:
    """The selected records that can be replayed (rows quarantined before ids existed cannot)."""
    where, params = selection.where()
    where = f"{where} AND quarantine_id IS NOT NULL" if where else " WHERE quarantine_id IS NOT NULL"
    sql = f"SELECT quarantine_id, record, source_file, source_line, rule FROM {warehouse.relation(META_SCHEMA, 'quarantine')}"
    order = " ORDER BY quarantined_at, source_file, source_line"  # in a merge, the later record of a key wins
    return [
        dict(zip(("quarantine_id", "record", "source_file", "source_line", "rule"), r, strict=True))
        for r in warehouse.query(sql + where + order, params)
    ]


def replay(spec: PipelineSpec, environment: Environment, selection: QuarantineSelection) -> LoadReport | None:
    """Replay the selected rows of `spec`'s quarantine; None when nothing matches."""
    warehouse = open_warehouse(environment.warehouse_url, environment.breakers)
    try:
        ensure_metadata(warehouse)
        records = quarantined(warehouse, QuarantineSelection(spec.id, selection.rule, selection.run_id))
    finally:
        warehouse.close()
    if not records:
        return None
    return run_pipeline(spec, environment, RunOptions(source=given(ReplaySource(records)), replay=True))
