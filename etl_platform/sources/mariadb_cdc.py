"""Change data capture from MariaDB: a consistent snapshot, then bounded windows of the row binlog, positioned by GTID.

The same semantics as PostgreSQL's (sources.change_capture): the snapshot is read inside
`START TRANSACTION WITH CONSISTENT SNAPSHOT`, whose binlog position MariaDB reports consistently
(`Binlog_snapshot_file` / `Binlog_snapshot_position`), turned into a GTID position with
`BINLOG_GTID_POS`; a window is whole transactions after the saved GTID, read with
mysql-replication's BinLogStreamReader (`auto_position`), blocking, up to the server's GTID
position when the window started, and its end GTID is saved with the publish. Nothing is
acknowledged at the source: no slot holds the binlog, so the risk is its retention
(`expire_logs_days`) running out before the pipeline reads on; then a run says to take a new
snapshot. Row events carry column names because the server runs
`binlog_row_metadata = FULL`; a change of them (ALTER TABLE) ends the window, and the next run
judges the new schema's drift. A TRUNCATE of the table (a QueryEvent) starts a window.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import pyarrow as pa
import pymysql
import pymysql.cursors
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import HeartbeatLogEvent, MariadbGtidEvent, QueryEvent, XidEvent
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent
from sqlalchemy.engine import make_url

from etl_platform.errors import SourceError, masked_url, one_line
from etl_platform.sources.base import SourceChunk
from etl_platform.sources.change_capture import (
    ChangeCaptureRun,
    Truncation,
    WindowPosition,
    change_chunk,
    open_change_capture,
    wait_for_window,
)
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.spec.sources import MariadbCdcSource as MariadbCdcSpec
from etl_platform.warehouse.base import Warehouse

_TRUNCATE = re.compile(r"^\s*TRUNCATE\s+(?:TABLE\s+)?(?:`?(\w+)`?\s*\.\s*)?`?(\w+)`?\s*;?\s*$", re.IGNORECASE)
_EVENTS = [MariadbGtidEvent, XidEvent, QueryEvent, WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent, HeartbeatLogEvent]
_STANDALONE = 1  # a GTID event's flag: a transaction of one statement (DDL), with no XID event
_TYPES: dict[str, pa.DataType] = {
    **dict.fromkeys(("tinyint", "smallint", "mediumint", "int", "bigint", "year", "bit"), pa.int64()),
    "float": pa.float32(),
    "double": pa.float64(),
    "date": pa.date32(),
    "datetime": pa.timestamp("us"),
    "timestamp": pa.timestamp("us", tz="UTC"),
    **dict.fromkeys(("binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"), pa.binary()),
}


def connection_settings(url: str) -> dict:
    """pymysql's connection arguments from a SQLAlchemy URL (`mysql+pymysql://user@host:port/`)."""
    parsed = make_url(url)
    return {
        "host": parsed.host or "127.0.0.1",
        "port": parsed.port or 3306,
        "user": parsed.username or "root",
        "passwd": parsed.password or "",
    }


def connect(url: str, **options: object) -> pymysql.Connection:
    settings = connection_settings(url)
    return pymysql.connect(
        host=settings["host"],
        port=settings["port"],
        user=settings["user"],
        password=settings["passwd"],
        charset="utf8mb4",
        autocommit=True,
        connect_timeout=10,
        init_command="SET time_zone = '+00:00'",
        **options,
    )


def gtid_domains(position: str) -> dict[int, str]:
    """A GTID position (`0-1-164,1-2-7`) by replication domain."""
    return {int(gtid.split("-")[0]): gtid for gtid in position.replace(" ", "").split(",") if gtid}


def gtid_behind(saved: str, current: str) -> int:
    """How many transactions `saved` is behind `current`: per domain, the difference of sequence numbers."""
    known = {domain: int(gtid.rsplit("-", 1)[1]) for domain, gtid in gtid_domains(saved).items()}
    return sum(max(0, int(gtid.rsplit("-", 1)[1]) - known.get(domain, 0)) for domain, gtid in gtid_domains(current).items())


def server_gtid(url: str) -> str:
    """The server's binlog GTID position now."""
    with connect(url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT @@gtid_binlog_pos")
        return cursor.fetchone()[0]


def _sequence(gtid: str | None) -> int:
    return 0 if gtid is None else int(gtid.rsplit("-", 1)[1])


def _reached(window: _Window, goal: dict[int, str]) -> bool:
    """Whether the window reads up to the goal's transaction in every replication domain."""
    return all(_sequence(window.end.get(domain)) >= _sequence(gtid) for domain, gtid in goal.items())


@dataclass(frozen=True)
class _Change:
    kind: str  # "I", "U", "D"
    values: dict
    at: int  # the transaction's time, seconds since the epoch


@dataclass
class _Window:
    """The changes of whole transactions after the start GTID, in binlog order."""

    end: dict[int, str]
    changes: list[_Change] = field(default_factory=list)
    truncation: Truncation | None = None
    full: bool = False

    @property
    def position(self) -> str:
        return ",".join(self.end[d] for d in sorted(self.end))


@dataclass
class _Transaction:
    gtid: str
    domain: int
    at: int
    standalone: bool
    changes: list[_Change] = field(default_factory=list)
    truncated: bool = False


def _text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, set):
        return ",".join(sorted(value))
    return str(value)


def arrow_type(data_type: str, precision: int | None, scale: int | None) -> pa.DataType:
    """The Arrow type a column of this MariaDB type becomes (the snapshot's and the binlog's alike); else text."""
    if data_type == "decimal" and precision is not None and precision <= 38:
        return pa.decimal128(precision, scale or 0)
    return _TYPES.get(data_type, pa.string())


def to_arrow(values: list, kind: pa.DataType) -> pa.Array:
    if pa.types.is_string(kind):
        return pa.array([_text(v) for v in values], kind)
    if pa.types.is_binary(kind):
        return pa.array([v.encode() if isinstance(v, str) else v for v in values], kind)
    return pa.array(values, kind)


class MariadbCdcSource(ChangeCaptureRun):
    """One run of a mariadb_cdc pipeline: the snapshot (no saved position, or a full refresh), else one binlog window."""

    def __init__(self, spec: MariadbCdcSpec, url: str, saved: dict | None, found: dict | None = None):
        """`saved` is where this run starts (None: take the snapshot); `found`, the position saved now."""
        self.spec, self.url, self.saved, self.found = spec, url, saved, found if found is not None else saved
        self.schema, self.table = spec.schema_and_table
        self.snapshot = saved is None
        self.start_gtid = "" if saved is None else str(saved["gtid"])
        self.end_gtid: str | None = None
        self.label = (
            f"{masked_url(url)}: {spec.table} (binlog after GTID {self.start_gtid or 'the snapshot'}; line = change number)"
        )
        self.types: dict[str, pa.DataType] = {}

    def describe(self) -> list[str]:
        kind = "snapshot" if self.snapshot else f"changes after GTID {self.start_gtid}"
        return [f"{self.label}: {kind}"]

    def total_bytes(self) -> None:
        return None

    def fingerprint(self) -> str:
        return f"mariadb_cdc:{self.spec.table}:{self.snapshot}:{self.start_gtid}:{self.end_gtid}"

    def checkpoint(self) -> WindowPosition | None:
        return None if self.end_gtid is None else WindowPosition({"table": self.spec.table, "gtid": self.end_gtid}, self.found)

    def acknowledge(self, checkpoint: WindowPosition) -> None:
        """Nothing to tell the server: the binlog is kept by its retention, not by a reader's position."""

    def lag(self) -> int:
        """GTID transactions the saved position is behind the server's binlog, for the binlog-lag check."""
        return gtid_behind(self.end_gtid or self.start_gtid, server_gtid(self.url))

    def read(self, chunk_rows: int) -> Iterator[SourceChunk]:
        try:
            self.types = self._column_types()
            if self.snapshot:
                yield from self._read_snapshot(chunk_rows)
            else:
                yield from self._read_changes(chunk_rows)
        except pymysql.err.OperationalError as error:
            raise SourceError(
                f"{self.label}: cannot read: {one_line(error)}; check the url, that the server is up and runs the row "
                f"binlog with GTIDs (log_bin, binlog_format = ROW, binlog_row_metadata = FULL)"
            ) from None

    def _column_types(self) -> dict[str, pa.DataType]:
        with connect(self.url) as connection, connection.cursor() as cursor:
            cursor.execute(
                "SELECT COLUMN_NAME, DATA_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE FROM information_schema.COLUMNS "
                "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
                (self.schema, self.table),
            )
            rows = cursor.fetchall()
        if not rows:
            raise SourceError(f"{self.label}: table {self.spec.table} does not exist; check `source.table`")
        return {name: arrow_type(kind.lower(), precision, scale) for name, kind, precision, scale in rows}

    def _arrays(self, names: list[str], columns: list[list]) -> dict[str, pa.Array]:
        return {n: to_arrow(v, self.types.get(n, pa.string())) for n, v in zip(names, columns, strict=True)}

    # --- the snapshot ---------------------------------------------------------------------------

    def _read_snapshot(self, chunk_rows: int) -> Iterator[SourceChunk]:
        """The table as of one consistent snapshot, in chunks, and the GTID position the binlog continues from."""
        names = list(self.types)
        quoted = ", ".join(f"`{n}`" for n in names)
        with connect(self.url) as connection:
            with connection.cursor() as cursor:
                cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                cursor.execute("SHOW STATUS LIKE 'binlog_snapshot_%'")
                status = {name.lower(): value for name, value in cursor.fetchall()}
                cursor.execute(
                    "SELECT BINLOG_GTID_POS(%s, %s)", (status["binlog_snapshot_file"], int(status["binlog_snapshot_position"]))
                )
                gtid = cursor.fetchone()[0] or ""
            emitted = False
            with connection.cursor(pymysql.cursors.SSCursor) as cursor:
                cursor.execute(f"SELECT {quoted} FROM `{self.schema}`.`{self.table}`")
                while rows := cursor.fetchmany(chunk_rows):
                    yield self._snapshot_chunk(names, rows)
                    emitted = True
            if not emitted:  # an empty table still publishes: the target is created, or emptied by a full refresh
                yield self._snapshot_chunk(names, [])
            connection.rollback()
        self.end_gtid = gtid

    def _snapshot_chunk(self, names: list[str], rows: list[tuple]) -> SourceChunk:
        columns = [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in names]
        count = len(rows)
        return change_chunk(self.spec, self.label, self._arrays(names, columns), [0] * count, [False] * count, [None] * count)

    # --- a binlog window ------------------------------------------------------------------------

    def _read_changes(self, chunk_rows: int) -> Iterator[SourceChunk]:

        def read() -> tuple[_Window, bool]:
            window = self._read_window()
            return window, window.full

        window = wait_for_window(read, self.spec.max_wait)
        self.end_gtid, self.truncation = window.position, window.truncation
        if window.truncation is not None and not window.changes:  # the publish still empties the target
            names = list(self.types)
            yield change_chunk(self.spec, self.label, self._arrays(names, [[] for _ in names]), [], [], [])
        group: list[tuple[int, _Change]] = []
        for number, change in enumerate(window.changes, start=1):
            if group and (len(group) >= chunk_rows or group[-1][1].values.keys() != change.values.keys()):
                yield self._changes_chunk(group)
                group = []
            group.append((number, change))
        if group:
            yield self._changes_chunk(group)

    def _changes_chunk(self, group: list[tuple[int, _Change]]) -> SourceChunk:
        """Changes of one column layout; a delete carries its old row, as the binlog (binlog_row_image = FULL) gives it."""
        names = list(group[0][1].values)
        columns = [[change.values[n] for _, change in group] for n in names]
        deleted = [change.kind == "D" for _, change in group]
        times = [datetime.datetime.fromtimestamp(c.at, datetime.UTC) if c.kind == "D" else None for _, c in group]
        return change_chunk(self.spec, self.label, self._arrays(names, columns), [n for n, _ in group], deleted, times)

    def _stream(self) -> BinLogStreamReader:
        if not self.start_gtid:
            raise SourceError(f"{self.label}: the saved position holds no GTID; run the pipeline with --full-refresh")
        return BinLogStreamReader(
            connection_settings=connection_settings(self.url),
            server_id=self.spec.reader_id,
            is_mariadb=True,
            auto_position=self.start_gtid,
            only_events=_EVENTS,
            only_schemas=[self.schema],
            only_tables=[self.table],
            blocking=True,  # non-blocking, the server resets the connection at the binlog's end, losing its unread tail
            slave_heartbeat=1,  # idle at the binlog's end for a second: a heartbeat, and the window ends
            resume_stream=True,
            enable_logging=False,
        )

    def _read_window(self) -> _Window:
        """Whole transactions after the start GTID, up to max_changes, a change of the columns or a second truncate.

        The window also ends at the server's binlog position when it started (`goal`), or at a
        heartbeat (the server had nothing more for a second).
        """
        window, transaction, columns = _Window(gtid_domains(self.start_gtid)), None, None
        goal = gtid_domains(server_gtid(self.url))
        if _reached(window, goal):
            return window
        stream = self._stream()
        try:
            for event in stream:
                if isinstance(event, HeartbeatLogEvent):
                    return window
                if isinstance(event, MariadbGtidEvent):
                    standalone = bool(event.flags & _STANDALONE)
                    transaction = _Transaction(event.gtid, event.domain_id, event.timestamp, standalone)
                elif transaction is None:
                    continue  # the tail of a transaction the start GTID is after
                elif isinstance(event, WriteRowsEvent | UpdateRowsEvent | DeleteRowsEvent):
                    if (event.schema, event.table) != (self.schema, self.table):
                        continue
                    changes = self._row_changes(event, transaction.at)
                    layout = tuple(changes[0].values) if changes else columns
                    if columns is not None and layout != columns and window.changes:
                        return window  # a schema change: the next run starts with it and judges its drift
                    columns = layout
                    transaction.changes += changes
                elif isinstance(event, QueryEvent) and self._truncates(event):
                    transaction.changes, transaction.truncated = [], True
                if self._ends(event, transaction):
                    if not self._commit(window, transaction):
                        return window
                    transaction = None
                    stream.auto_position = window.position  # a dropped connection resumes here (the library reconnects)
                    if window.full or _reached(window, goal):
                        return window
        except pymysql.err.OperationalError as error:
            if "1236" in str(error) or "purged" in str(error).lower():
                raise SourceError(
                    f"{self.label}: the binlog after GTID {self.start_gtid} is gone (expire_logs_days), so those changes "
                    f"are lost; run the pipeline with --full-refresh to take a new snapshot"
                ) from None
            raise
        finally:
            stream.close()
        return window

    @staticmethod
    def _ends(event: object, transaction: _Transaction) -> bool:
        if isinstance(event, XidEvent):
            return True
        return isinstance(event, QueryEvent) and (transaction.standalone or event.query.strip().upper() == "COMMIT")

    def _commit(self, window: _Window, transaction: _Transaction) -> bool:
        """Add a whole transaction to the window; False when it must start the next one (a second truncate).

        A transaction at or before the window's position in its domain is one the reader delivered
        again after it reconnected: it is in the window already.
        """
        if _sequence(window.end.get(transaction.domain)) >= _sequence(transaction.gtid):
            return True
        if transaction.truncated:
            if window.changes or window.truncation is not None:
                return False
            at = datetime.datetime.fromtimestamp(transaction.at, datetime.UTC)
            window.truncation = Truncation(f"GTID {transaction.gtid}", at)
        window.changes += transaction.changes
        window.end[transaction.domain] = transaction.gtid
        window.full = len(window.changes) >= self.spec.max_changes
        return True

    def _truncates(self, event: QueryEvent) -> bool:
        match = _TRUNCATE.match(event.query)
        if match is None:
            return False
        default = event.schema.decode() if isinstance(event.schema, bytes) else event.schema
        return (match[1] or default, match[2]) == (self.schema, self.table)

    def _row_changes(self, event: WriteRowsEvent | UpdateRowsEvent | DeleteRowsEvent, at: int) -> list[_Change]:
        """The event's rows as changes; an update that changed the primary key also deletes the old key."""
        if isinstance(event, WriteRowsEvent):
            return [_Change("I", row["values"], at) for row in event.rows]
        if isinstance(event, DeleteRowsEvent):
            return [_Change("D", row["values"], at) for row in event.rows]
        keys = event.primary_key if isinstance(event.primary_key, tuple | list) else (event.primary_key,)
        changes = []
        for row in event.rows:
            before, after = row["before_values"], row["after_values"]
            if any(before.get(k) != after.get(k) for k in keys if k):
                changes.append(_Change("D", before, at))
            changes.append(_Change("U", after, at))
        return changes


def open_mariadb_cdc(
    spec: PipelineSpec, warehouse: Warehouse, full_refresh: bool, secrets: Mapping[str, str]
) -> MariadbCdcSource:
    """The pipeline's run: the snapshot without a saved position of its table (or on a full refresh), else the next window."""
    table = spec.source.table
    return open_change_capture(
        spec, warehouse, full_refresh, secrets, MariadbCdcSource, lambda found: found.get("table") == table
    )
