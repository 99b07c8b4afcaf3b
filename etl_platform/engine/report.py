"""The outcome of one pipeline run: counts that add up, and what was published where."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa


@dataclass
class LoadReport:
    pipeline: str
    dataset: str
    run_id: str
    write_mode: str
    source_files: list[str] = field(default_factory=list)
    source_columns: list[str] = field(default_factory=list)  # as the source delivered them: where lineage starts
    rows_read: int = 0
    rows_published: int = 0
    rows_quarantined: int = 0
    rows_filtered: int = 0
    rows_deduplicated: int = 0  # of rows_filtered: duplicates a deduplicate step removed
    rows_aggregated: int | None = None  # rows that entered an aggregate; then rows_published counts its groups
    quarantined_by_rule: dict[str, int] = field(default_factory=dict)
    bytes_read: int = 0
    duration_seconds: float = 0.0
    fingerprint: str | None = None
    target_rows: int | None = None
    schema: pa.Schema | None = None
    skipped_reason: str | None = None
    chunks: int = 0
    schema_version: int | None = None
    checks: list = field(default_factory=list)  # quality.audit.CheckOutcome, one per rule and the breaker
    chunk_rows: int = 0
    tuning: str | None = None  # the auto-tuner's reason, when it chose
    truncation: str | None = None  # change data capture: the source table was truncated, and the target emptied there
    dedup_models: list[dict] = field(default_factory=list)  # per deduplicate step: blocking and estimated model

    def check_accounting(self) -> None:
        """Every row read is published, quarantined or filtered; anything else is a bug."""
        kept = self.rows_published if self.rows_aggregated is None else self.rows_aggregated
        accounted = kept + self.rows_quarantined + self.rows_filtered
        if accounted != self.rows_read:
            raise AssertionError(
                f"{self.pipeline}: {self.rows_read} rows read but {accounted} accounted for "
                f"({self.rows_published} published, {self.rows_quarantined} quarantined, {self.rows_filtered} filtered)"
            )
