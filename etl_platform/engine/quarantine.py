"""Turn rejected rows and malformed lines into quarantine records, and stage them.

A quarantine record keeps everything needed to understand and replay a failure: the pipeline,
run, stage and rule, the column and value, the reason, where the row came from, and the whole
original row as JSON.
"""

from __future__ import annotations

import datetime

import orjson
import pyarrow as pa

from etl_platform.destinations.staging import staging_table
from etl_platform.sources.base import PROVENANCE, SOURCE_FILE, SOURCE_LINE, BadLine
from etl_platform.transforms import Rejected
from etl_platform.warehouse.base import QUARANTINE_SCHEMA, Warehouse


class Quarantine:
    """Collects a run's rejected rows in a staging table; published with the run (or kept on failure)."""

    def __init__(self, warehouse: Warehouse, staging_name: str, pipeline: str, dataset: str, run_id: str):
        self.warehouse = warehouse
        self.name = staging_name
        self.staging = staging_table(warehouse, staging_name, with_sequence=False)
        self.pipeline, self.dataset, self.run_id = pipeline, dataset, run_id
        self.count = 0
        self.by_rule: dict[str, int] = {}

    @property
    def staging_name(self) -> str | None:
        return self.name if self.count else None

    def _stage(
        self, stage: str, rule: str, columns: list, values: list, reasons: list, files: list, lines: list, records: list
    ) -> None:
        now = datetime.datetime.now(datetime.UTC)
        n = len(reasons)
        table = pa.table(
            {
                "pipeline": [self.pipeline] * n,
                "dataset": [self.dataset] * n,
                "run_id": [self.run_id] * n,
                "stage": [stage] * n,
                "rule": [rule] * n,
                "column_name": columns,
                "value": values,
                "reason": reasons,
                "source_file": files,
                "source_line": lines,
                "record": records,
                "quarantined_at": [now] * n,
            },
            schema=QUARANTINE_SCHEMA,
        )
        self.staging.write(table)
        self.count += n
        self.by_rule[rule] = self.by_rule.get(rule, 0) + n

    def add_rejected(self, stage: str, rejected: Rejected) -> None:
        rows = rejected.rows
        data = rows.drop_columns([c for c in PROVENANCE if c in rows.column_names]).to_pylist()
        self._stage(
            stage,
            rejected.rule,
            rejected.columns,
            rejected.values,
            rejected.reasons,
            rows[SOURCE_FILE].cast(pa.string()).to_pylist(),
            rows[SOURCE_LINE].to_pylist(),
            [orjson.dumps(r, default=str).decode() for r in data],
        )

    def add_bad_lines(self, lines: list[BadLine]) -> None:
        self._stage(
            "source",
            "malformed_line",
            [None] * len(lines),
            [line.text for line in lines],
            [line.reason for line in lines],
            [line.source_file for line in lines],
            [line.line for line in lines],
            [orjson.dumps({"raw": line.text}).decode() for line in lines],
        )

    def discard(self) -> None:
        self.warehouse.execute(f"DROP TABLE IF EXISTS {self.staging.relation}")
