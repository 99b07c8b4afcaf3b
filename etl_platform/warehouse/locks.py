"""Locks that let runs of one dataset overlap safely (docs/how-a-run-works.md, "Concurrent runs").

Two kinds, both released by the database or the operating system when their holder dies, so a
killed run never leaves one behind:

- **The dataset lock.** Every publish to a dataset (a load, a replay, a purge, a full refresh)
  holds it from the start of its transaction to the end, so publishes of one dataset happen one
  after the other and each sees everything the previous one committed.
- **A staging claim.** A run claims the name of its staging table before creating it and holds
  the claim until it ends; start-up cleanup drops only staging nobody claims, i.e. whose run is gone.

PostgreSQL keeps both as advisory locks (`warehouse/postgres.py`); an embedded database
(DuckDB, SQLite) keeps them as `flock`ed files in a folder beside the database file (`FileLocks`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)
WAITING = "waiting for another run's publish to %s to finish"
# The lock that keeps the audit trail's hash chain linear (warehouse.audit): not a dataset's name,
# as datasets are schema.table.
AUDIT_CHAIN_LOCK = "audit chain"


def lock_key(kind: str, name: str) -> int:
    """A signed 64-bit key (PostgreSQL's advisory lock space) for a lock of `kind` on `name`."""
    digest = hashlib.blake2b(f"etl_platform:{kind}:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class RunLocks(Protocol):
    """What a warehouse dialect provides for concurrent runs (see the module's docstring)."""

    def lock_dataset(self, dataset: str) -> None:
        """Inside a transaction: wait for the dataset's lock, then hold it until the transaction ends."""

    def transaction_ended(self) -> None:
        """After COMMIT or ROLLBACK: release what `lock_dataset` took, if the database does not."""

    def claim(self, staging: str) -> None:
        """Mark staging `staging` as this live run's until `release` (or the connection's end)."""

    def release(self, staging: str) -> None: ...

    def claimed(self, staging: str) -> bool:
        """Whether a live run holds a claim on `staging`."""

    def close(self) -> None: ...


class FileLocks:
    """The locks of an embedded database as exclusive `flock`s on files in `.<database file>.locks/` beside it.

    `flock` belongs to an open file, so it excludes other threads of this process as well as
    other processes, and the kernel drops it when its holder dies. A dataset's lock file stays
    (one small file per dataset); a claim's file is removed when the claim is released.
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self._transaction: dict[str, int] = {}
        self._claims: dict[str, int] = {}

    def _open(self, name: str, create: bool = True) -> int | None:
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            return os.open(self.folder / name, os.O_RDWR | (os.O_CREAT if create else 0), 0o644)
        except FileNotFoundError:
            return None

    def lock_dataset(self, dataset: str) -> None:
        """A lock this transaction holds already is held (a second `flock` of the file would wait for itself)."""
        if dataset in self._transaction:
            return
        handle = self._open(f"dataset-{lock_key('dataset', dataset):x}.lock")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info(WAITING, dataset)
            fcntl.flock(handle, fcntl.LOCK_EX)
        self._transaction[dataset] = handle

    def transaction_ended(self) -> None:
        while self._transaction:
            os.close(self._transaction.popitem()[1])  # closing the file releases its flock

    def _claim_file(self, staging: str) -> str:
        return f"staging-{staging}.lock"

    def claim(self, staging: str) -> None:
        handle = self._open(self._claim_file(staging))
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new run id's name: nobody else holds it
        self._claims[staging] = handle

    def release(self, staging: str) -> None:
        handle = self._claims.pop(staging, None)
        if handle is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.folder / self._claim_file(staging))
            os.close(handle)

    def claimed(self, staging: str) -> bool:
        if staging in self._claims:
            return True
        handle = self._open(self._claim_file(staging), create=False)
        if handle is None:
            return False  # never claimed (a platform before claims) or released: its run is gone
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(handle)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.folder / self._claim_file(staging))  # a killed run's claim file
        return False

    def close(self) -> None:
        self.transaction_ended()
        for staging in list(self._claims):
            self.release(staging)


def embedded_locks(database: str, kind: type[FileLocks] = FileLocks) -> RunLocks:
    """An embedded database's locks: files beside it, or none for an in-memory database."""
    if database == ":memory:":
        return NoLocks()
    path = Path(database)
    return kind(path.parent / f".{path.name}.locks")


class NoLocks:
    """An in-memory database: no other connection sees it, so nothing needs locking."""

    def lock_dataset(self, dataset: str) -> None: ...

    def transaction_ended(self) -> None: ...

    def claim(self, staging: str) -> None: ...

    def release(self, staging: str) -> None: ...

    def claimed(self, staging: str) -> bool:
        return False

    def close(self) -> None: ...
