"""The landing zone: where raw input files are found, by path or glob."""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

from etl_platform.errors import SourceError
from etl_platform.sources.base import ContentHash


@dataclass(frozen=True)
class LandingFile:
    path: Path
    size: int

    @property
    def name(self) -> str:
        return str(self.path)


@dataclass(frozen=True)
class LocalLandingZone:
    """A local folder of input files (the embedded default)."""

    root: Path

    def resolve(self, pattern: str) -> list[LandingFile]:
        """Files matching `pattern` (relative to the root, `**` allowed), sorted by path."""
        full = pattern if Path(pattern).is_absolute() else str(self.root / pattern)
        paths = sorted(Path(p) for p in glob.glob(full, recursive=True) if Path(p).is_file())
        if not paths:
            raise SourceError(
                f"no input files match {pattern!r} under {self.root}; put files there or fix `source.path` "
                f"(the landing zone is set by ETL_LANDING_DIR)"
            )
        return [LandingFile(p, p.stat().st_size) for p in paths]


def fingerprint_files(files: list[LandingFile]) -> str:
    """Content fingerprint of a set of files: the same bytes give the same fingerprint."""
    digest = ContentHash()
    for f in files:
        digest.update(f.path.name.encode())
        with f.path.open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


class FileSetSource:
    """What every file source shares: its files, their size, and their content fingerprint."""

    def __init__(self, files: list[LandingFile]):
        self.files = files

    def describe(self) -> list[str]:
        return [f.name for f in self.files]

    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def fingerprint(self) -> str:
        return fingerprint_files(self.files)
