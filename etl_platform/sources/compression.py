"""Open a possibly compressed input file as a binary stream (gzip, bz2, zip or none)."""

from __future__ import annotations

import bz2
import gzip
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from etl_platform.errors import SourceError

_BY_SUFFIX = {".gz": "gzip", ".gzip": "gzip", ".bz2": "bz2", ".zip": "zip"}


def detect(path: Path, compression: str) -> str:
    return _BY_SUFFIX.get(path.suffix.lower(), "none") if compression == "auto" else compression


@dataclass
class OpenedInput:
    """A decompressing stream over a file, and how far into the file (compressed bytes) it has read."""

    stream: BinaryIO
    raw: BinaryIO

    def consumed(self) -> int:
        return self.raw.tell()


@contextmanager
def open_binary(path: Path, compression: str, name: str | None = None) -> Iterator[OpenedInput]:
    """Open `path` (known to the user as `name`) through its decompression; a zip must hold exactly one file."""
    name = name or str(path)
    kind = detect(path, compression)
    try:
        with path.open("rb") as raw:
            if kind == "gzip":
                with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                    yield OpenedInput(stream, raw)
            elif kind == "bz2":
                with bz2.BZ2File(raw, "rb") as stream:
                    yield OpenedInput(stream, raw)
            elif kind == "zip":
                with zipfile.ZipFile(raw) as archive:
                    members = [m for m in archive.namelist() if not m.endswith("/")]
                    if len(members) != 1:
                        raise SourceError(f"{name}: a zip source must hold exactly one file, found {len(members)}")
                    with archive.open(members[0]) as stream:
                        yield OpenedInput(stream, raw)
            else:
                yield OpenedInput(raw, raw)
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise SourceError(f"{name}: cannot read as {kind}-compressed input: {exc}; check `source.compression`") from exc
