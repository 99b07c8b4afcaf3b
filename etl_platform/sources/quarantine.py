"""Quarantined rows as a source: what `etl quarantine replay` (etl_platform.engine.replay) loads.

Each quarantine record holds the row as the source gave it, so replayed rows run through the
same transforms and rules as a load's; provenance keeps each row's original file and line.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import orjson
import pyarrow as pa

from etl_platform.errors import EtlError
from etl_platform.fingerprint import ContentHash
from etl_platform.sources.base import SOURCE_FILE, BadLine, SourceChunk
from etl_platform.sources.json import records_to_table
from etl_platform.warehouse.base import Warehouse
from etl_platform.warehouse.publish import remove_from_quarantine, still_quarantined


class ReplayRaced(EtlError):
    """Records a replay read left the quarantine before it published (another run published first)."""


@dataclass(frozen=True)
class ReplayedRecords:
    """A replay's checkpoint: its records leave the quarantine in the publish transaction.

    The replay read them before its load; `save` runs under the dataset lock and reads them again.
    If another run removed any meanwhile (a replay of the same rows, a replace that superseded
    them, a purge), publishing would bring back rows that are published or gone: it raises instead,
    which rolls the publish back, and the replay starts over from what the quarantine holds now.
    """

    ids: list[str]

    def save(self, target: Warehouse, pipeline: str, run_id: str) -> None:
        held = still_quarantined(target, self.ids)
        if held != len(self.ids):
            raise ReplayRaced(
                f"{pipeline}: {len(self.ids) - held} of the {len(self.ids)} replayed rows left the quarantine "
                f"while the replay ran (another run published them or replaced their input first); nothing was published"
            )
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
