"""Replay quarantined rows: back through the pipeline's transforms and quality rules into its target.

Each quarantine record holds the row as the source gave it, so a replay reruns exactly what a load
would. In the publish transaction the replayed records leave the quarantine; rows that fail
again are quarantined anew with their new reason. Replaying is idempotent: once replayed, a
record is gone, and the same selection finds nothing. A malformed line replays once its record
has been edited into a JSON object of its fields.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from etl_platform.engine.environment import Environment
from etl_platform.engine.options import RunOptions, given
from etl_platform.engine.report import LoadReport
from etl_platform.engine.runner import run_pipeline
from etl_platform.errors import SpecError
from etl_platform.sources.quarantine import ReplayRaced, ReplaySource
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.spec.sources import CHANGE_CAPTURE_TYPES
from etl_platform.warehouse import Warehouse, open_warehouse
from etl_platform.warehouse.metadata import META_SCHEMA, ensure_metadata

log = logging.getLogger(__name__)
# Replays that lose the race to other publishes of their rows before giving up (see `replay`).
REPLAY_ATTEMPTS = 3


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


def replay_refusal(spec: PipelineSpec) -> str | None:
    """Why this pipeline's quarantine cannot be replayed, or None when it can.

    A quarantined change is one moment of a row: merged now, it would overwrite the later changes
    the target already holds (the target keeps no LSN to tell). A partitioned pipeline's rows are
    quarantined under each partition's state key, which a replay of the whole pipeline would not find.
    """
    if spec.source.type in CHANGE_CAPTURE_TYPES:
        return (
            f"{spec.id} applies changes in source order (LSN, GTID), and a replayed change would overwrite newer ones: fix the "
            f"rows at the source (the next change of each row is captured), then `etl quarantine purge {spec.id}`"
        )
    if spec.partitions is not None:
        return f"{spec.id} is partitioned, and replaying a partition's quarantine is not built yet: re-load the partition"
    return None


def replay(spec: PipelineSpec, environment: Environment, selection: QuarantineSelection) -> LoadReport | None:
    """Replay the selected rows of `spec`'s quarantine; None when nothing matches.

    If another run took some of the rows out of the quarantine before this replay published
    (ReplayRaced: nothing was published), the replay starts over from what the quarantine holds
    now; each new attempt follows a publish that did commit, so a few attempts suffice.
    """
    refusal = replay_refusal(spec)
    if refusal is not None:
        raise SpecError(refusal)
    attempt = 1
    while True:
        warehouse = open_warehouse(environment.warehouse_url, environment.breakers, environment.secrets)
        try:
            ensure_metadata(warehouse)
            records = quarantined(warehouse, QuarantineSelection(spec.id, selection.rule, selection.run_id))
        finally:
            warehouse.close()
        if not records:
            return None
        try:
            return run_pipeline(spec, environment, RunOptions(source=given(ReplaySource(records)), replay=True))
        except ReplayRaced as raced:
            if attempt == REPLAY_ATTEMPTS:
                raise ReplayRaced(
                    f"{spec.id}: other runs took the selected rows out of the quarantine during {attempt} replays "
                    f"in a row; nothing was published; replay again once those runs are done"
                ) from None
            attempt += 1
            log.info("%s; replaying what the quarantine holds now", raced)
