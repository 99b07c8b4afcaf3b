"""Decode PostgreSQL's pgoutput logical replication messages (protocol version 1).

Only the messages a change window needs: Begin, Commit, Relation, Insert, Update, Delete and
Truncate (Origin, Type and logical Message are recognised and skipped). Column values arrive in
their text form; `sources.pg_types` turns them into Arrow values by the column's type OID. The
format is PostgreSQL's "Logical Replication Message Formats" chapter; the maintained Python
decoders (pypgoutput, last released 2022) are not kept up, so this small module is the platform's.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# A column value a TOASTed column did not send, because an update left it unchanged.
UNCHANGED = object()


@dataclass(frozen=True)
class Column:
    name: str
    type_oid: int
    type_modifier: int
    key: bool


@dataclass(frozen=True)
class Relation:
    oid: int
    namespace: str
    name: str
    replica_identity: str
    columns: tuple[Column, ...]

    @property
    def qualified(self) -> str:
        return f"{self.namespace}.{self.name}"


@dataclass(frozen=True)
class Begin:
    final_lsn: int
    commit_time: int  # microseconds since 2000-01-01
    xid: int


@dataclass(frozen=True)
class Commit:
    commit_lsn: int
    end_lsn: int
    commit_time: int


@dataclass(frozen=True)
class Change:
    """An insert ('I'), update ('U') or delete ('D'): the new row, or for a delete the old key or row."""

    kind: str
    relation_oid: int
    new: tuple | None
    old: tuple | None


@dataclass(frozen=True)
class Truncate:
    relation_oids: tuple[int, ...]


@dataclass(frozen=True)
class Skipped:
    tag: str


Message = Begin | Commit | Relation | Change | Truncate | Skipped


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def take(self, fmt: str) -> tuple:
        values = struct.unpack_from(fmt, self.data, self.at)
        self.at += struct.calcsize(fmt)
        return values

    def byte(self) -> str:
        self.at += 1
        return chr(self.data[self.at - 1])

    def string(self) -> str:
        end = self.data.index(0, self.at)
        text = self.data[self.at : end].decode()
        self.at = end + 1
        return text

    def tuple_data(self) -> tuple:
        (count,) = self.take("!h")
        values: list = []
        for _ in range(count):
            kind = self.byte()
            if kind == "n":
                values.append(None)
            elif kind == "u":
                values.append(UNCHANGED)
            elif kind in "tb":
                (length,) = self.take("!i")
                raw = self.data[self.at : self.at + length]
                self.at += length
                values.append(raw.decode() if kind == "t" else raw)
            else:
                raise ValueError(f"pgoutput: unknown tuple value kind {kind!r}")
        return tuple(values)


def decode(data: bytes) -> Message:
    """One pgoutput message from its bytes."""
    reader = _Reader(bytes(data))
    tag = reader.byte()
    if tag == "B":
        return Begin(*reader.take("!qqI"))
    if tag == "C":
        _flags, commit_lsn, end_lsn, commit_time = reader.take("!bqqq")
        return Commit(commit_lsn, end_lsn, commit_time)
    if tag == "R":
        return _relation(reader)
    if tag in "IUD":
        return _change(tag, reader)
    if tag == "T":
        count, _options = reader.take("!ib")
        return Truncate(reader.take(f"!{count}I"))
    if tag in "OYM":
        return Skipped(tag)
    raise ValueError(f"pgoutput: unknown message type {tag!r}")


def _relation(reader: _Reader) -> Relation:
    (oid,) = reader.take("!I")
    namespace, name = reader.string(), reader.string()
    identity = reader.byte()
    (count,) = reader.take("!h")
    columns = []
    for _ in range(count):
        (flags,) = reader.take("!b")
        column_name = reader.string()
        type_oid, modifier = reader.take("!Ii")
        columns.append(Column(column_name, type_oid, modifier, bool(flags & 1)))
    return Relation(oid, namespace or "pg_catalog", name, identity, tuple(columns))


def _change(tag: str, reader: _Reader) -> Change:
    (oid,) = reader.take("!I")
    old = new = None
    marker = reader.byte()
    if marker in "KO":
        old = reader.tuple_data()
        if tag == "U":
            marker = reader.byte()
    if marker == "N":
        new = reader.tuple_data()
    return Change(tag, oid, new, old)


def lsn_text(lsn: int) -> str:
    """An LSN as PostgreSQL writes it (`16/B374D848`)."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def lsn_number(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)
