"""Open a possibly compressed input file as a binary stream (gzip, bz2, zip or none)."""

from __future__ import annotations

import bz2
import gzip
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from etl_platform.errors import SourceError

_BY_SUFFIX = {".gz": "gzip", ".gzip": "gzip", ".bz2": "bz2", ".zip": "zip"}


def detect(path: Path, compression: str) -> str:
    return _BY_SUFFIX.get(path.suffix.lower(), "none") if compression == "auto" else compression


@contextmanager
def open_binary(path: Path, compression: str) -> Iterator[BinaryIO]:
    """Yield a decompressing stream; a zip must hold exactly one file."""
    kind = detect(path, compression)
    try:
        if kind == "gzip":
            with gzip.open(path, "rb") as stream:
                yield stream
        elif kind == "bz2":
            with bz2.open(path, "rb") as stream:
                yield stream
        elif kind == "zip":
            with zipfile.ZipFile(path) as archive:
                members = [m for m in archive.namelist() if not m.endswith("/")]
                if len(members) != 1:
                    raise SourceError(f"{path}: a zip source must hold exactly one file, found {len(members)}")
                with archive.open(members[0]) as stream:
                    yield stream
        else:
            with path.open("rb") as stream:
                yield stream
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise SourceError(f"{path}: cannot read as {kind}-compressed input: {exc}; check `source.compression`") from exc
