"""What every file source shares: its files in their store, their size, and their fingerprint."""

from __future__ import annotations

from etl_platform.stores import FileStore, StoredFile


class FileSetSource:
    """Files read one at a time through a local copy (the file itself, or a download from S3)."""

    def __init__(self, files: list[StoredFile], store: FileStore):
        self.files = files
        self.store = store

    def describe(self) -> list[str]:
        return [f.name for f in self.files]

    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def fingerprint(self) -> str:
        return self.store.fingerprint(self.files)
