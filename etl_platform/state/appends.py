"""What an append reads of its new or changed files: the exactly-once rules for files.

The append ledger (warehouse.ledger) holds, per dataset, the fingerprint of every file content
appended, with the file's URL and the bytes read. From it, each file a load lists is:

- **held**: its bytes were appended already, under any name (touched, renamed, copied,
  re-delivered): recorded as processed, never read again;
- **grown**: the content appended from this URL is the beginning of the file now, ending at a
  line break: only the lines after it are read;
- **changed** in any other way: the pipeline's `on_changed_file` decides: `fail` (the default)
  stops the load naming the file, `reload` reads it whole and replaces its earlier rows in the
  same transaction, `append` reads it whole and appends it again;
- **new**: read whole.

Two files of one load with the same bytes are read once. docs/how-a-run-works.md has the table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from etl_platform.errors import EtlError
from etl_platform.state.files import PROCESSED, FileRecord
from etl_platform.stores import FileStore, StoredFile
from etl_platform.warehouse.base import Warehouse
from etl_platform.warehouse.ledger import (
    LedgerEntry,
    appended_contents,
    appended_files,
    forget_legacy_entries,
    insert_entries,
    legacy_entries,
)


class ChangedFile(EtlError):
    """An appended file's content changed, not by new lines at its end, and the policy is `fail`."""


@dataclass(frozen=True)
class Tail:
    """Where the unread part of a grown file starts: its first byte and that byte's physical line."""

    start: int
    line: int


@dataclass
class AppendPlan:
    """The files an append reads (with their content fingerprints), from where, and those it need not read."""

    read: list[StoredFile] = field(default_factory=list)
    fingerprints: dict[str, str] = field(default_factory=dict)
    tails: dict[str, Tail] = field(default_factory=dict)
    reloaded: list[str] = field(default_factory=list)
    held: list[StoredFile] = field(default_factory=list)


def plan_appends(
    warehouse: Warehouse,
    dataset: str,
    store: FileStore,
    files: list[StoredFile],
    on_changed_file: str,
    reads_tail: Callable[[StoredFile], bool],
    fresh: bool = False,
) -> AppendPlan:
    """Sort `files` by the rules above; `fresh` (a full refresh) ignores what the ledger holds."""
    fingerprints = {f.url: store.content_fingerprint(f) for f in files}
    held = set() if fresh else appended_contents(warehouse, dataset, fingerprints.values())
    earlier = {} if fresh else appended_files(warehouse, dataset, fingerprints)
    plan = AppendPlan()
    for file in files:
        fingerprint = fingerprints[file.url]
        if fingerprint in held:
            plan.held.append(file)
            continue
        held.add(fingerprint)
        before = earlier.get(file.url)
        if before is not None:
            tail = grown_tail(store, file, before) if reads_tail(file) else None
            if tail is not None:
                plan.tails[file.url] = tail
            elif on_changed_file == "reload":
                plan.reloaded.append(file.url)
            elif on_changed_file == "fail":
                raise ChangedFile(changed_message(file, before, dataset))
        plan.read.append(file)
        plan.fingerprints[file.url] = fingerprint
    return plan


def changed_message(file: StoredFile, before: LedgerEntry, dataset: str) -> str:
    return (
        f"{file.name}: its content changed since it was appended to {dataset} ({before.bytes} bytes then, "
        f"{file.size} now, and not by lines added at its end). Nothing was loaded. Restore the file, or choose "
        f"in the pipeline's `destination.on_changed_file`: `reload` (replace the rows this file gave with its "
        f"content now) or `append` (append it whole again); the default `fail` stops here"
    )


def grown_tail(store: FileStore, file: StoredFile, before: LedgerEntry) -> Tail | None:
    """Where the new lines of a grown file start, or None when the file changed in another way.

    The bytes appended before must be the file's beginning, and end where a line ends (the last
    line appended is not continued), so the rest is whole new lines.
    """
    length = before.bytes or 0
    if not 0 < length < file.size:
        return None
    with store.local_copy(file) as path:
        if not store.prefix_matches(path, length, before.fingerprint):
            return None
        lines, last, following = _line_breaks(path, length)
    if last == b"\n":
        return Tail(length, lines + 1)
    for line_break in (b"\r\n", b"\n"):
        if following.startswith(line_break):
            return Tail(length + len(line_break), lines + 2)
    return None


def _line_breaks(path: Path, length: int) -> tuple[int, bytes, bytes]:
    """Line feeds in the first `length` bytes, the last of those bytes, and the two after them."""
    count, last = 0, b""
    with path.open("rb") as handle:
        remaining = length
        while remaining and (block := handle.read(min(remaining, 1 << 20))):
            count += block.count(b"\n")
            last, remaining = block[-1:], remaining - len(block)
        return count, last, handle.read(2)


def adopt_legacy_entries(
    warehouse: Warehouse, dataset: str, pipeline: str, store: FileStore, files: list[StoredFile], records: dict[str, FileRecord]
) -> None:
    """Once per dataset after the upgrade from the per-load ledger: give each appended file its own entry.

    The old entries fingerprinted a load's set of files and name no file. A file that the file
    state says was processed, in the version listed now, holds exactly the bytes appended then:
    its entry is its content now. So does one touched since (a new version of the same size), the
    day this upgrade is for; one whose size changed meanwhile is read as new. The old entries go
    in the same transaction.
    """
    if not legacy_entries(warehouse, dataset, pipeline):
        return
    unchanged = [f for f in files if (r := records.get(f.url)) and r.status == PROCESSED and r.size == f.size]
    entries: dict[str, LedgerEntry] = {}
    for file in unchanged:
        fingerprint = store.content_fingerprint(file)
        entries.setdefault(fingerprint, LedgerEntry(fingerprint, file.url, file.size))
    with warehouse.transaction():
        held = appended_contents(warehouse, dataset, entries)
        insert_entries(warehouse, dataset, pipeline, "upgrade", [e for f, e in entries.items() if f not in held])
        forget_legacy_entries(warehouse, dataset, pipeline)
