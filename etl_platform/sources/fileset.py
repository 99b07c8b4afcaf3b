"""What every file source shares: its files in their store, their size, and their fingerprint."""

from __future__ import annotations

from etl_platform.state.files import ProcessedFiles
from etl_platform.stores import FileStore, StoredFile


class FileSetSource:
    """Files read one at a time through a local copy (the file itself, or a download from S3).

    Its checkpoint is the files themselves (`ProcessedFiles`), decided when the load was planned;
    None for a read that records nothing (a dry run).
    """

    def __init__(self, files: list[StoredFile], store: FileStore, processed: ProcessedFiles | None = None):
        self.files = files
        self.store = store
        self.processed = processed

    def describe(self) -> list[str]:
        return [f.name for f in self.files]

    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def fingerprint(self) -> str:
        return self.store.fingerprint(self.files)

    def checkpoint(self) -> ProcessedFiles | None:
        return self.processed

    def acknowledge(self, checkpoint: ProcessedFiles) -> None:
        """Files are not consumed: the landing zone keeps them, and the file state says they are done."""
