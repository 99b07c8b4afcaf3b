"""What every file source shares: its files in their store, their size, their fingerprints, and where each read starts."""

from __future__ import annotations

from etl_platform.fingerprint import ContentHash
from etl_platform.state.appends import AppendPlan, Tail
from etl_platform.state.files import ProcessedFiles
from etl_platform.stores import FileStore, StoredFile
from etl_platform.warehouse.ledger import LedgerEntry


class FileSetSource:
    """Files read one at a time through a local copy (the file itself, or a download from S3).

    Its checkpoint is the files themselves (`ProcessedFiles`), decided when the load was planned;
    None for a read that records nothing (a dry run). An append's `plan` (state.appends) gives each
    file's content fingerprint and, for a file that grew, where its new lines start.
    """

    def __init__(
        self,
        files: list[StoredFile],
        store: FileStore,
        processed: ProcessedFiles | None = None,
        plan: AppendPlan | None = None,
    ):
        self.files = files
        self.store = store
        self.processed = processed
        self.plan = plan

    def describe(self) -> list[str]:
        return [f.name for f in self.files]

    def tail(self, file: StoredFile) -> Tail | None:
        """Where reading `file` starts, when only its new lines are read."""
        return self.plan.tails.get(file.url) if self.plan is not None else None

    def total_bytes(self) -> int:
        return sum(f.size - (t.start if (t := self.tail(f)) else 0) for f in self.files)

    def _content(self, file: StoredFile) -> str:
        if self.plan is not None and file.url in self.plan.fingerprints:
            return self.plan.fingerprints[file.url]
        return self.store.content_fingerprint(file)

    def fingerprint(self) -> str:
        """The files read, by name, content and where each read started."""
        digest = ContentHash()
        for file in self.files:
            tail = self.tail(file)
            digest.update(f"{file.name}\0{self._content(file)}\0{tail.start if tail else 0}\n".encode())
        return digest.hexdigest()

    def ledger_entries(self, rows_by_file: dict[str, int]) -> list[LedgerEntry]:
        """One append ledger entry per file read: its content now and the rows it gave."""
        return [LedgerEntry(self._content(f), f.url, rows_by_file.get(f.name, 0)) for f in self.files]

    def reloaded(self) -> list[str]:
        """Files whose earlier rows this load replaces (on_changed_file: reload)."""
        return list(self.plan.reloaded) if self.plan is not None else []

    def checkpoint(self) -> ProcessedFiles | None:
        return self.processed

    def acknowledge(self, checkpoint: ProcessedFiles) -> None:
        """Files are not consumed: the landing zone keeps them, and the file state says they are done."""
