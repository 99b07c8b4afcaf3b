"""What an append reads of its new or changed files: the exactly-once rules for files.

The append ledger (warehouse.ledger) holds, per dataset, the fingerprint of every file content
appended; the file state (state.files) keeps, per URL, the size and fingerprint of the content
last processed from it. From them, each new or changed file (new URL, or new version) is:

- **held**: its bytes were appended already, under any name (touched, renamed, copied,
  re-delivered): recorded as processed, never read again;
- **grown**: the content processed from this URL is the beginning of the file now and ends at a
  line break: only the lines after it are read;
- **changed** in any other way: the pipeline's `on_changed_file` decides: `fail` (the default)
  stops the load naming the file, `reload` reads it whole and replaces its earlier rows in the
  same transaction, `append` reads it whole and appends it again;
- **new**: read whole.

Two files of one load with the same bytes are read once. A reload forgets the file's earlier
content, so files skipped as copies of that content are read again in the same load.
docs/how-a-run-works.md has the table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from etl_platform.errors import EtlError
from etl_platform.state.files import PROCESSED, FileRecord, FileState
from etl_platform.stores import FileStore, StoredFile
from etl_platform.warehouse.base import Warehouse
from etl_platform.warehouse.ledger import (
    LedgerEntry,
    appended_contents,
    contents_of_files,
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
    fingerprints: dict[str, str] = field(default_factory=dict)  # of the files read and held
    tails: dict[str, Tail] = field(default_factory=dict)
    reloaded: list[str] = field(default_factory=list)
    reread: list[str] = field(default_factory=list)  # unchanged copies of content a reload forgets
    held: list[StoredFile] = field(default_factory=list)


@dataclass(frozen=True)
class AppendRules:
    """What one append's plan looks at: the dataset, the store, the file state, and the pipeline's choices."""

    warehouse: Warehouse
    dataset: str
    store: FileStore
    records: dict[str, FileRecord]  # the pipeline's file state by URL (empty on a full refresh)
    on_changed_file: str
    reads_tail: Callable[[StoredFile], bool]
    fresh: bool = False  # a full refresh: the ledger is being emptied, nothing is held


def plan_appends(rules: AppendRules, files: list[StoredFile], listed: list[StoredFile]) -> AppendPlan:
    """Sort the new or changed `files` by the rules above; `listed` (every file there) gives a reload its copies."""
    fingerprints = {f.url: rules.store.content_fingerprint(f) for f in files}
    held = set() if rules.fresh else appended_contents(rules.warehouse, rules.dataset, fingerprints.values())
    plan, queue, queued = AppendPlan(), list(files), {f.url for f in files}
    while queue:
        file = queue.pop(0)
        fingerprint = fingerprints.get(file.url) or rules.store.content_fingerprint(file)
        plan.fingerprints[file.url] = fingerprint
        if fingerprint in held:
            plan.held.append(file)
            continue
        held.add(fingerprint)
        before = rules.records.get(file.url)
        if before is not None and before.content not in (None, fingerprint):
            tail = grown_tail(rules.store, file, before) if rules.reads_tail(file) else None
            if tail is not None:
                plan.tails[file.url] = tail
            elif rules.on_changed_file == "reload":
                plan.reloaded.append(file.url)
                forgotten = {before.content, *contents_of_files(rules.warehouse, rules.dataset, [file.url])}
                held -= forgotten
                copies = _copies(rules.records, listed, forgotten, exclude=queued)
                queue += copies
                queued.update(f.url for f in copies)
                plan.reread += [f.url for f in copies]
            elif rules.on_changed_file == "fail":
                raise ChangedFile(changed_message(file, before, rules.dataset))
        plan.read.append(file)
    return plan


def _copies(records: dict[str, FileRecord], listed: list[StoredFile], contents: set[str], exclude: set[str]) -> list[StoredFile]:
    """Unchanged files that were skipped as copies of `contents`: a reload forgets them, so they are read."""
    unchanged = [f for f in listed if f.url not in exclude and (r := records.get(f.url)) and r.version == f.version]
    return [f for f in unchanged if records[f.url].content in contents]


def changed_message(file: StoredFile, before: FileRecord, dataset: str) -> str:
    return (
        f"{file.name}: its content changed since it was appended to {dataset} ({before.size} bytes then, "
        f"{file.size} now, and not by lines added at its end). Nothing was loaded. Restore the file, or choose "
        f"in the pipeline's `destination.on_changed_file`: `reload` (replace the rows this file gave with its "
        f"content now) or `append` (append it whole again); the default `fail` stops here"
    )


def grown_tail(store: FileStore, file: StoredFile, before: FileRecord) -> Tail | None:
    """Where the new lines of a grown file start, or None when the file changed in another way.

    The bytes processed before must be the file's beginning, and end where a line ends (the last
    line read is not continued), so the rest is whole new lines.
    """
    length = before.size or 0
    if not 0 < length < file.size:
        return None
    with store.local_copy(file) as path:
        if not store.prefix_matches(path, length, before.content):
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


def adopt_legacy_entries(rules: AppendRules, pipeline: str, listed: list[StoredFile]) -> dict[str, FileRecord]:
    """Once per dataset after the upgrade from the per-load ledger: give each appended file its own entry.

    The old entries fingerprinted a load's set of files and name no file. A file that the file
    state says was processed, with the size it has now, holds the bytes appended then: a file
    touched since (a new version, the same size) is the day this upgrade is for. One whose size
    changed meanwhile is read as new. The file state records each adopted file's content, and the
    old entries go, in one transaction. Returns the file state as it is then.
    """
    warehouse, dataset = rules.warehouse, rules.dataset
    if not legacy_entries(warehouse, dataset, pipeline):
        return rules.records
    adopted = [f for f in listed if (r := rules.records.get(f.url)) and r.status == PROCESSED and r.size == f.size]
    contents = {f.url: rules.store.content_fingerprint(f) for f in adopted}
    entries = {fingerprint: LedgerEntry(fingerprint, url) for url, fingerprint in contents.items()}
    state = FileState(warehouse, pipeline)
    with warehouse.transaction():
        held = appended_contents(warehouse, dataset, entries)
        insert_entries(warehouse, dataset, pipeline, "upgrade", [e for f, e in entries.items() if f not in held])
        forget_legacy_entries(warehouse, dataset, pipeline)
        state.mark_processed(adopted, "upgrade", exclusive=False, contents=contents)
    return state.records()
