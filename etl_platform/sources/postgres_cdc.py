"""Change data capture from PostgreSQL: a snapshot from the slot's exported snapshot, then bounded change windows.

Exactly once (docs/how-a-run-works.md, "Exactly once for change data capture"): a run *peeks*
at the slot (`pg_logical_slot_peek_binary_changes`, nothing is consumed), the window's end LSN
is saved with the publish (a `Position`), and only after the commit does `acknowledge` advance
the slot (`pg_replication_slot_advance`). A kill before the commit re-reads the same window; a
kill between commit and acknowledge leaves the slot behind the saved LSN, and the next run first
advances it there, so nothing is applied twice.

The first run (or a full refresh) creates the slot on a replication connection with
EXPORT_SNAPSHOT (psycopg2: psycopg 3 has no replication connection) and copies the table inside
that snapshot, so the snapshot and the first change are exactly adjacent.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import psycopg
import psycopg2
import psycopg2.extras
from psycopg import sql

from etl_platform.errors import SourceError, masked_url, one_line
from etl_platform.sources import pgoutput
from etl_platform.sources.base import SourceChunk
from etl_platform.sources.change_capture import (
    ChangeCaptureRun,
    Truncation,
    WindowPosition,
    change_chunk,
    open_change_capture,
    wait_for_window,
)
from etl_platform.sources.pg_types import SESSION_OPTIONS, arrow_type, copy_rows, to_arrow
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.spec.sources import PostgresCdcSource as PostgresCdcSpec
from etl_platform.warehouse.base import Warehouse

_EPOCH_2000 = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)


def conninfo(url: str) -> str:
    """A libpq URL from a SQLAlchemy one (`postgresql+psycopg://` → `postgresql://`)."""
    scheme, rest = url.split("://", 1)
    return f"{scheme.split('+')[0]}://{rest}"


def connect(url: str) -> psycopg.Connection:
    return psycopg.connect(conninfo(url), autocommit=True, options=SESSION_OPTIONS)


@dataclass(frozen=True)
class SlotState:
    confirmed_lsn: int
    current_lsn: int

    @property
    def lag_bytes(self) -> int:
        return max(0, self.current_lsn - self.confirmed_lsn)


def slot_state(connection: psycopg.Connection, slot: str) -> SlotState | None:
    """Where the slot stands (its confirmed LSN) and the server's flushed WAL position; None if no such slot."""
    row = connection.execute(
        "SELECT confirmed_flush_lsn::text, pg_current_wal_flush_lsn()::text FROM pg_replication_slots WHERE slot_name = %s",
        (slot,),
    ).fetchone()
    if row is None or row[0] is None:
        return None
    return SlotState(pgoutput.lsn_number(row[0]), pgoutput.lsn_number(row[1]))


def drop_slot(connection: psycopg.Connection, slot: str) -> None:
    connection.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s", (slot,))


def advance_slot(connection: psycopg.Connection, slot: str, lsn: int) -> None:
    """Move the slot's confirmed LSN to `lsn` (never back): the server may drop the WAL before it."""
    state = slot_state(connection, slot)
    if state is not None and state.confirmed_lsn < lsn:
        connection.execute("SELECT pg_replication_slot_advance(%s, %s::pg_lsn)", (slot, pgoutput.lsn_text(lsn)))


@dataclass
class _Window:
    """The changes of whole transactions read in one run, in LSN order."""

    changes: list[tuple[int, pgoutput.Change, int]] = field(default_factory=list)  # (lsn, change, commit time)
    end_lsn: int = 0
    truncation: Truncation | None = None  # the window starts with a truncate of the table
    truncated_oid: int | None = None


class PostgresCdcSource(ChangeCaptureRun):
    """One run of a postgres_cdc pipeline: the snapshot (no saved position, or a full refresh), else one change window."""

    def __init__(self, spec: PostgresCdcSpec, url: str, saved: dict | None, found: dict | None = None):
        """`saved` is where this run starts (None: take the snapshot); `found`, the position saved now."""
        self.spec, self.url, self.saved, self.found = spec, url, saved, found if found is not None else saved
        self.slot, self.publication = spec.slot_name, spec.publication_name
        self.snapshot = saved is None
        self.start_lsn = 0 if saved is None else int(saved["lsn"])
        self.end_lsn: int | None = None
        self.label = f"{masked_url(url)}: {spec.table} (slot {self.slot}; line = LSN)"
        self.relations: dict[int, pgoutput.Relation] = {}

    def describe(self) -> list[str]:
        kind = "snapshot" if self.snapshot else f"changes after {pgoutput.lsn_text(self.start_lsn)}"
        return [f"{self.label}: {kind}"]

    def total_bytes(self) -> None:
        return None

    def fingerprint(self) -> str:
        return f"postgres_cdc:{self.slot}:{self.snapshot}:{self.start_lsn}:{self.end_lsn}"

    def checkpoint(self) -> WindowPosition | None:
        return None if self.end_lsn is None else WindowPosition({"slot": self.slot, "lsn": self.end_lsn}, self.found)

    def acknowledge(self, checkpoint: WindowPosition) -> None:
        """After the commit: the slot may release the WAL up to the saved LSN."""
        with connect(self.url) as connection:
            advance_slot(connection, self.slot, int(checkpoint.value["lsn"]))

    def lag(self) -> int | None:
        """WAL the slot holds back now (None: no such slot), for the slot-lag check."""
        with connect(self.url) as connection:
            state = slot_state(connection, self.slot)
        return None if state is None else state.lag_bytes

    def read(self, chunk_rows: int) -> Iterator[SourceChunk]:
        try:
            with connect(self.url) as connection:
                self._ensure_publication(connection)
                if self.snapshot:
                    yield from self._read_snapshot(connection, chunk_rows)
                else:
                    yield from self._read_changes(connection, chunk_rows)
        except (psycopg.OperationalError, psycopg2.OperationalError) as error:
            raise SourceError(
                f"{self.label}: cannot read: {one_line(error)}; check the url and that the database is up"
            ) from None

    # --- the publication and the snapshot -----------------------------------------------------

    def _ensure_publication(self, connection: psycopg.Connection) -> None:
        """Adopt the publication if it exists, else create it for the table."""
        found = connection.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (self.publication,)).fetchone()
        if found is None:
            schema, table = self.spec.schema_and_table
            connection.execute(
                sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(
                    sql.Identifier(self.publication), sql.Identifier(schema, table)
                )
            )

    def _columns(self, connection: psycopg.Connection) -> list[pgoutput.Column]:
        schema, table = self.spec.schema_and_table
        rows = connection.execute(
            "SELECT a.attname, a.atttypid, a.atttypmod FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s "
            "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            (schema, table),
        ).fetchall()
        if not rows:
            raise SourceError(f"{self.label}: table {self.spec.table} does not exist; check `source.table`")
        return [pgoutput.Column(name, oid, modifier, False) for name, oid, modifier in rows]

    def _read_snapshot(self, connection: psycopg.Connection, chunk_rows: int) -> Iterator[SourceChunk]:
        """Create the slot (again: a slot with no saved position has lost its snapshot) and COPY the table in its snapshot."""
        drop_slot(connection, self.slot)
        replication = psycopg2.connect(
            conninfo(self.url), connection_factory=psycopg2.extras.LogicalReplicationConnection, options=SESSION_OPTIONS
        )
        try:
            cursor = replication.cursor()
            cursor.execute(f'CREATE_REPLICATION_SLOT "{self.slot}" LOGICAL pgoutput EXPORT_SNAPSHOT')
            _name, consistent_point, snapshot, _plugin = cursor.fetchone()
            lsn = pgoutput.lsn_number(consistent_point)
            columns = self._columns(connection)
            with connection.transaction():
                connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                connection.execute("SET TRANSACTION SNAPSHOT %s" % sql.quote(snapshot))  # noqa: UP031 - a literal, quoted
                yield from self._copy(connection, columns, lsn, chunk_rows)
        finally:
            replication.close()
        self.end_lsn = lsn

    def _copy(
        self, connection: psycopg.Connection, columns: list[pgoutput.Column], lsn: int, chunk_rows: int
    ) -> Iterator[SourceChunk]:
        schema, table = self.spec.schema_and_table
        names = sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
        statement = sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT").format(names, sql.Identifier(schema, table))
        rows: list[list[str | None]] = []
        pending, emitted = "", False
        with connection.cursor().copy(statement) as copy:
            for block in copy:
                text = pending + bytes(block).decode()
                complete, _, pending = text.rpartition("\n")
                rows += copy_rows(complete)
                while len(rows) >= chunk_rows:
                    yield self._snapshot_chunk(columns, rows[:chunk_rows], lsn)
                    rows, emitted = rows[chunk_rows:], True
        rows += copy_rows(pending)
        if rows or not emitted:  # an empty table still publishes: the target is created, or emptied by a full refresh
            yield self._snapshot_chunk(columns, rows, lsn)

    def _snapshot_chunk(self, columns: list[pgoutput.Column], rows: list[list[str | None]], lsn: int) -> SourceChunk:
        values = [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in columns]
        return self._chunk(columns, values, [lsn] * len(rows), [False] * len(rows), [None] * len(rows))

    def _chunk(
        self,
        columns: list[pgoutput.Column] | tuple[pgoutput.Column, ...],
        values: list[list[str | None]],
        lsns: list[int],
        deleted: list[bool],
        deleted_at: list[datetime.datetime | None],
    ) -> SourceChunk:
        """Rows in the table's columns, each with its change's LSN and whether it is a delete."""
        arrays = {c.name: to_arrow(v, arrow_type(c.type_oid, c.type_modifier)) for c, v in zip(columns, values, strict=True)}
        return change_chunk(self.spec, self.label, arrays, lsns, deleted, deleted_at)

    # --- a change window ------------------------------------------------------------------------

    def _read_changes(self, connection: psycopg.Connection, chunk_rows: int) -> Iterator[SourceChunk]:
        state = slot_state(connection, self.slot)
        if state is None:
            raise SourceError(
                f"{self.label}: replication slot {self.slot} is gone, so changes since "
                f"{pgoutput.lsn_text(self.start_lsn)} are lost; run the pipeline with --full-refresh to take a new snapshot"
            )
        advance_slot(connection, self.slot, self.start_lsn)  # a kill after the last commit, before its acknowledge
        window = self._peek_window(connection)
        self.end_lsn, self.truncation = window.end_lsn, window.truncation
        if window.truncation is not None and not window.changes:  # the publish still empties the target
            relation = self.relations[window.truncated_oid]
            yield self._chunk(relation.columns, [[] for _ in relation.columns], [], [], [])
        yield from self._change_chunks(window, chunk_rows)

    def _peek_window(self, connection: psycopg.Connection) -> _Window:
        """Up to `max_changes` changes of whole transactions, waiting up to `max_wait` for the window to fill."""

        def peek() -> tuple[_Window, bool]:
            upto = slot_state(connection, self.slot).current_lsn
            rows = connection.execute(
                "SELECT lsn::text, data FROM pg_logical_slot_peek_binary_changes(%s, %s::pg_lsn, %s, "
                "'proto_version', '1', 'publication_names', %s)",
                (self.slot, pgoutput.lsn_text(upto), self.spec.max_changes, self.publication),
            ).fetchall()
            full = len(rows) >= self.spec.max_changes
            return self._decode(rows, None if full else upto), full

        return wait_for_window(peek, self.spec.max_wait)

    def _decode(self, rows: list[tuple[str, bytes]], seen_upto: int | None) -> _Window:
        """Whole transactions after the saved LSN, up to a schema change or a second truncate of the table.

        A truncate starts a window (sources.change_capture): the changes before it in its transaction
        are gone with it. `seen_upto` (the window was not cut by max_changes) is an LSN before which
        every commit was read: with nothing more to apply, the window ends there (the heartbeat that
        lets an idle slot release WAL).
        """
        window, pending, commit_time, truncated = _Window(end_lsn=self.start_lsn), [], 0, None
        for lsn_text, data in rows:
            message = pgoutput.decode(data)
            if isinstance(message, pgoutput.Begin):
                pending, commit_time, truncated = [], message.commit_time, None
            elif isinstance(message, pgoutput.Relation):
                known = self.relations.get(message.oid)
                if known is not None and known.columns != message.columns and window.changes:
                    return window  # a schema change: the next run starts with it and judges its drift
                self.relations[message.oid] = message
            elif isinstance(message, pgoutput.Change) and self._captured(message.relation_oid):
                lsn = pgoutput.lsn_number(lsn_text)
                pending += [(lsn, change, commit_time) for change in self._applied(message)]
            elif isinstance(message, pgoutput.Truncate) and any(map(self._captured, message.relation_oids)):
                pending, truncated = [], (lsn_text, next(filter(self._captured, message.relation_oids)))
            elif isinstance(message, pgoutput.Commit) and message.end_lsn > self.start_lsn:
                if truncated is not None:
                    if window.changes or window.truncation is not None:
                        return window  # the next window starts with this truncate
                    at = _EPOCH_2000 + datetime.timedelta(microseconds=commit_time)
                    window.truncation, window.truncated_oid = Truncation(truncated[0], at), truncated[1]
                window.changes += pending
                window.end_lsn = message.end_lsn
        if seen_upto is not None:
            window.end_lsn = max(window.end_lsn, seen_upto)
        return window

    def _captured(self, relation_oid: int) -> bool:
        """Whether a change is of this pipeline's table (an adopted publication may hold others)."""
        return self.relations[relation_oid].qualified == ".".join(self.spec.schema_and_table)

    def _applied(self, change: pgoutput.Change) -> list[pgoutput.Change]:
        """An update that changed the primary key also deletes the old key."""
        if change.kind != "U" or change.old is None:
            return [change]
        keys = [i for i, c in enumerate(self.relations[change.relation_oid].columns) if c.key]
        if all(change.old[i] == change.new[i] for i in keys):
            return [change]
        return [pgoutput.Change("D", change.relation_oid, None, change.old), change]

    def _change_chunks(self, window: _Window, chunk_rows: int) -> Iterator[SourceChunk]:
        """The window's changes as chunks; a chunk holds one relation schema."""
        group: list[tuple[int, pgoutput.Change, int]] = []
        for item in window.changes:
            if group and (len(group) >= chunk_rows or group[-1][1].relation_oid != item[1].relation_oid):
                yield self._changes_chunk(group)
                group = []
            group.append(item)
        if group:
            yield self._changes_chunk(group)

    def _changes_chunk(self, group: list[tuple[int, pgoutput.Change, int]]) -> SourceChunk:
        relation = self.relations[group[0][1].relation_oid]
        rows = [self._row_values(relation, change) for _, change, _ in group]
        deleted = [change.kind == "D" for _, change, _ in group]
        times = [
            _EPOCH_2000 + datetime.timedelta(microseconds=t) if d else None for (_, _, t), d in zip(group, deleted, strict=True)
        ]
        values = [list(column) for column in zip(*rows, strict=True)]
        return self._chunk(relation.columns, values, [lsn for lsn, _, _ in group], deleted, times)

    def _row_values(self, relation: pgoutput.Relation, change: pgoutput.Change) -> tuple:
        """The row a change leaves (a delete: its old key or row); an unchanged TOASTed value is taken from the old row."""
        values = change.old if change.kind == "D" else change.new
        if pgoutput.UNCHANGED not in values:
            return values
        if change.old is None or pgoutput.UNCHANGED in change.old:
            column = relation.columns[values.index(pgoutput.UNCHANGED)].name
            raise SourceError(
                f"{self.label}: an update of {relation.qualified} left the large (TOASTed) column {column!r} unchanged, "
                f"and PostgreSQL did not send its value; run `ALTER TABLE {relation.qualified} REPLICA IDENTITY FULL` "
                f"so updates carry the old row, then --full-refresh"
            )
        return tuple(o if v is pgoutput.UNCHANGED else v for v, o in zip(values, change.old, strict=True))


def open_postgres_cdc(
    spec: PipelineSpec, warehouse: Warehouse, full_refresh: bool, secrets: Mapping[str, str]
) -> PostgresCdcSource:
    """The pipeline's run: the snapshot without a saved position of its slot (or on a full refresh), else the next window."""
    slot = spec.source.slot_name
    return open_change_capture(spec, warehouse, full_refresh, secrets, PostgresCdcSource, lambda found: found.get("slot") == slot)
