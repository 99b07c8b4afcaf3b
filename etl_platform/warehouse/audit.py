"""The audit trail `_etl.audit_log`: who published, replayed, purged or refreshed what, hash-chained.

Each entry is written inside the transaction of the change it records (docs/security.md, "Audit
trail"), so an entry exists exactly when its change committed. Each entry holds the hash of the
one before it (sha256 over a canonical JSON of its fields): editing, deleting or inserting an
entry breaks the chain there, which `verify_chain` names. The chain stays linear because appending takes the audit chain's
lock (warehouse.locks), held to the end of the transaction, after the dataset locks.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import pwd
from dataclasses import dataclass, field

import pyarrow as pa

from etl_platform.warehouse.base import META_SCHEMA, Warehouse
from etl_platform.warehouse.locks import AUDIT_CHAIN_LOCK

AUDIT_TABLE = "audit_log"
GENESIS = "0" * 64

AUDIT_SCHEMA = pa.schema(
    [
        ("seq", pa.int64()),
        ("recorded_at", pa.string()),  # ISO 8601 UTC text: hashed as stored, the same on every backend
        ("action", pa.string()),  # publish | replay | full_refresh | purge
        ("db_user", pa.string()),
        ("os_user", pa.string()),
        ("launched_by", pa.string()),
        ("run_id", pa.string()),
        ("pipeline", pa.string()),
        ("dataset", pa.string()),
        ("tenant", pa.string()),
        ("rows", pa.int64()),
        ("detail", pa.string()),
        ("previous_hash", pa.string()),
        ("entry_hash", pa.string()),
    ]
)
HASHED_FIELDS = [name for name in AUDIT_SCHEMA.names if name != "entry_hash"]


@dataclass(frozen=True)
class AuditEntry:
    """What one change did; who did it (database and OS user) is added when it is appended."""

    action: str
    dataset: str | None
    rows: int | None
    run_id: str | None = None
    pipeline: str | None = None
    tenant: str | None = None
    launched_by: str | None = None
    detail: dict = field(default_factory=dict)


def os_user() -> str:
    """The operating system user of this process (from the password database, not the environment)."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def entry_hash(row: dict) -> str:
    """The hash of an entry: sha256 over its fields (the previous entry's hash included) as canonical JSON."""
    canonical = json.dumps({name: row[name] for name in HASHED_FIELDS}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def append_audit(warehouse: Warehouse, entry: AuditEntry) -> dict:
    """Inside a transaction: take the chain's lock, then append `entry` after the latest one."""
    warehouse.locks.lock_dataset(AUDIT_CHAIN_LOCK)
    log = warehouse.relation(META_SCHEMA, AUDIT_TABLE)
    last = warehouse.query(f"SELECT seq, entry_hash FROM {log} ORDER BY seq DESC LIMIT 1")
    row = {
        "seq": last[0][0] + 1 if last else 1,
        "recorded_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "action": entry.action,
        "db_user": warehouse.database_user(),
        "os_user": os_user(),
        "launched_by": entry.launched_by,
        "run_id": entry.run_id,
        "pipeline": entry.pipeline,
        "dataset": entry.dataset,
        "tenant": entry.tenant,
        "rows": entry.rows,
        "detail": json.dumps(entry.detail, sort_keys=True, default=str),
        "previous_hash": last[0][1] if last else GENESIS,
    }
    row["entry_hash"] = entry_hash(row)
    warehouse.bulk_insert(log, pa.Table.from_pylist([row], AUDIT_SCHEMA))
    return row


def audit_entries(warehouse: Warehouse, limit: int | None = None, dataset: str | None = None) -> list[dict]:
    """Entries in chain order (newest last); `limit` keeps the newest ones."""
    log = warehouse.relation(META_SCHEMA, AUDIT_TABLE)
    where, params = (" WHERE dataset = ?", (dataset,)) if dataset else ("", ())
    order = f" ORDER BY seq DESC LIMIT {int(limit)}" if limit else " ORDER BY seq"
    rows = warehouse.query(f"SELECT {', '.join(map(warehouse.quote, AUDIT_SCHEMA.names))} FROM {log}{where}{order}", params)
    entries = [dict(zip(AUDIT_SCHEMA.names, r, strict=True)) for r in rows]
    return sorted(entries, key=lambda e: e["seq"])


@dataclass(frozen=True)
class ChainVerdict:
    """The result of `verify_chain`: entries checked, the head's hash, and the first broken entry."""

    entries: int
    head: str
    broken_seq: int | None = None
    problem: str | None = None

    @property
    def intact(self) -> bool:
        return self.problem is None


def verify_chain(warehouse: Warehouse) -> ChainVerdict:
    """Walk the chain from the first entry: numbering, links and hashes; stop at the first break.

    An edited entry no longer matches its hash; a deleted one leaves a gap in the numbering and a
    link to a hash that is gone; an inserted one (the later entries renumbered) breaks the link or
    the hash of the entry after it. Only the newest entries deleted leave no trace in the chain
    itself: compare the head's hash with one noted elsewhere (`etl audit list` prints it).
    """
    previous, expected = GENESIS, 1
    entries = audit_entries(warehouse)
    for row in entries:
        seq = row["seq"]
        if seq != expected:
            return ChainVerdict(len(entries), previous, seq, f"entry {seq} follows entry {expected - 1}: entries are missing")
        if row["previous_hash"] != previous:
            return ChainVerdict(
                len(entries), previous, seq, f"entry {seq} does not link to entry {seq - 1}: an entry was deleted or inserted"
            )
        if entry_hash(row) != row["entry_hash"]:
            return ChainVerdict(len(entries), previous, seq, f"entry {seq} does not match its hash: it was edited")
        previous, expected = row["entry_hash"], seq + 1
    return ChainVerdict(len(entries), previous)
