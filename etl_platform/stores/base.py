"""What every file store offers: list by prefix, read through a local copy, write, move, delete.

Keys are '/'-separated and relative to the store's root, so a pipeline spec names the same
file the same way whether the landing zone is a folder on a laptop or a bucket in production.
"""

from __future__ import annotations

import datetime
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StoredFile:
    """One file in a store; `version` changes whenever its content is replaced (an S3 ETag)."""

    key: str
    size: int
    version: str
    modified: datetime.datetime
    url: str

    @property
    def name(self) -> str:
        """How errors, quarantine records and metadata name the file."""
        return self.url


class FileStore(ABC):
    """A folder or a bucket prefix holding files."""

    url: str

    @abstractmethod
    def list(self, prefix: str) -> Iterator[StoredFile]:
        """Every file whose key starts with `prefix`, in any order (all pages)."""

    @abstractmethod
    def local_copy(self, file: StoredFile) -> AbstractContextManager[Path]:
        """A local path holding the file's bytes while the context is open."""

    @abstractmethod
    def upload(self, local: Path, key: str) -> None:
        """Write a local file's bytes at `key`, replacing what is there."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def move(self, key: str, to_key: str) -> None: ...

    @abstractmethod
    def delete(self, keys: list[str]) -> None: ...

    @abstractmethod
    def content_fingerprint(self, file: StoredFile) -> str:
        """Identifies the file's bytes, whatever its name: the append ledger's key for a file."""

    @abstractmethod
    def prefix_matches(self, local: Path, length: int, fingerprint: str) -> bool:
        """Whether the first `length` bytes of `local` (a copy of a file of this store) have `fingerprint`.

        True says the file grew: the content the ledger holds is the beginning of the file now.
        """

    @abstractmethod
    def staging_folder(self, prefix: str, run_tag: str, run_is_live: Callable[[str], bool]) -> Path:
        """A new, empty local folder where a run writes the parts it will publish under `prefix`.

        `run_is_live(run_tag)` tells whether a run is still going, whose staging must stay.
        """

    @abstractmethod
    def publish_folder(self, staging: Path, prefix: str, replace: bool, rename: Callable[[str], str]) -> None:
        """Make the staged parts the content of `prefix` (replace) or add them to it (append).

        `rename` maps a staged part's relative path to its published one; an append names parts by
        its input's fingerprint, so appending the same input again overwrites instead of duplicating.
        """

    def file_url(self, key: str) -> str:
        return f"{self.url.rstrip('/')}/{key}"
