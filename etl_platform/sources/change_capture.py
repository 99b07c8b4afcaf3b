"""What the change-data-capture sources share: the run's position, its change rows, its truncation, its opening.

A change-capture run (sources.postgres_cdc, sources.mariadb_cdc) is the table's snapshot when no
position is saved (or on a full refresh), else one bounded window of whole transactions after the
saved position. Its rows carry the change's position within the source (CHANGE_LSN: an LSN, or
the change's number in a binlog window) and whether it is a delete; the publish merges them in
that order (warehouse.publish). The window's end position is saved with the publish
(`WindowPosition`), so a kill before the commit re-reads the same window and a kill after it reads
on from there (docs/how-a-run-works.md, "Exactly once for change data capture").

A TRUNCATE of the table starts a window: the publish empties the target (or, with soft deletes,
marks every row deleted) at that position before it applies the window's changes, in the same
transaction, and the run reports it (`Truncation`).
"""

from __future__ import annotations

import abc
import datetime
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import pyarrow as pa

from etl_platform.errors import DestinationError, SourceError
from etl_platform.sources.base import SourceChunk, with_provenance
from etl_platform.sources.sql import expand_env
from etl_platform.spec.base import parse_duration
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.spec.sources import ChangeCaptureSource
from etl_platform.state.files import AlreadyProcessed
from etl_platform.state.positions import Position, saved_position
from etl_platform.warehouse.base import CHANGE_DELETED, CHANGE_LSN, DELETED_AT, Warehouse


@dataclass(frozen=True)
class WindowPosition:
    """The position a window ends at, saved only if the saved position is still the one the window started from.

    Two runs started from one position read the same changes; the one that publishes second would
    apply older changes over newer ones and move the position back. Inside the publish transaction
    (under the dataset's lock) it finds the position moved and publishes nothing.
    """

    value: dict
    started_from: dict | None

    def save(self, target: Warehouse, pipeline: str, run_id: str) -> None:
        if saved_position(target, pipeline) != self.started_from:
            raise AlreadyProcessed(f"another run of {pipeline} applied the changes after this window's start first")
        Position(self.value).save(target, pipeline, run_id)


class ChangeCaptureRun(abc.ABC):
    """One run of a change-capture source (its snapshot or one window), as the engine asks it after reading."""

    truncation: Truncation | None = None  # set by a window that starts with a TRUNCATE of the table

    @abc.abstractmethod
    def lag(self) -> int | None:
        """How far the pipeline is behind the source now, in the source's unit (its lag check's)."""


@dataclass(frozen=True)
class Truncation:
    """The table was truncated where this window starts: the publish empties the target first."""

    position: str  # as the source writes it (an LSN, a GTID)
    at: datetime.datetime  # the truncating transaction's commit time, a soft delete's `_deleted_at`

    def describe(self) -> str:
        return f"the source table was truncated at {self.position} ({self.at.isoformat()}): the target was emptied there"


def change_chunk(
    spec: ChangeCaptureSource,
    label: str,
    arrays: dict[str, pa.Array],
    positions: list[int],
    deleted: list[bool],
    deleted_at: list[datetime.datetime | None],
) -> SourceChunk:
    """Rows in the table's columns (`arrays`), each with its change's position and whether it is a delete."""
    columns = dict(arrays)
    columns[CHANGE_LSN] = pa.array(positions, pa.int64())
    columns[CHANGE_DELETED] = pa.array(deleted, pa.bool_())
    if spec.deletes == "soft":
        columns[DELETED_AT] = pa.array(deleted_at, pa.timestamp("us", tz="UTC"))
    return SourceChunk(with_provenance(pa.table(columns), label, pa.array(positions, pa.int64())))


def wait_for_window(read: Callable[[], tuple[object, bool]], max_wait: str) -> object:
    """Read a window again and again until it is full (`read` returns (window, full)) or `max_wait` passed."""
    deadline = time.monotonic() + parse_duration(max_wait).total_seconds()
    while True:
        window, full = read()
        if full or time.monotonic() >= deadline:
            return window
        time.sleep(0.2)


Run = TypeVar("Run")


def open_change_capture(
    spec: PipelineSpec,
    warehouse: Warehouse,
    full_refresh: bool,
    secrets: Mapping[str, str],
    run: Callable[[ChangeCaptureSource, str, dict | None, dict | None], Run],
    same_stream: Callable[[dict], bool],
) -> Run:
    """The pipeline's run: the snapshot without a saved position of this stream (or on a full refresh), else the next window.

    `same_stream` tells whether a saved position is of this source's stream (its slot, its table):
    a position of another one is no place to read on from.
    """
    source: ChangeCaptureSource = spec.source
    if warehouse.dialect == "mariadb":  # the change merge (deletes, soft deletes) is written for the others' SQL
        raise DestinationError(
            f"{spec.id}: change data capture publishes to a PostgreSQL, DuckDB or SQLite warehouse, not to MariaDB "
            f"(docs/pipeline-spec.md, 'A MariaDB/MySQL warehouse'); nothing was read from {source.table}"
        )
    if spec.destination.write != "merge" or spec.destination.is_file:
        raise SourceError(
            f"{spec.origin}: a {source.type} source applies inserts, updates and deletes: its destination needs "
            f"`write: merge` into a warehouse table with `primary_key: [...]` (the source table's key)"
        )
    found = saved_position(warehouse, spec.id)
    saved = None if full_refresh or found is None or not same_stream(found) else found
    return run(source, expand_env(source.url, secrets), saved, found)
