"""Where a pipeline's source files may be: the landing zone and the roots the deployment declares.

Whoever can write a pipeline file must not be able to load any file the process can read (the
system's user list, a secrets file) into the warehouse (docs/security.md). So a source path is
judged where it ends up: a local path after `..` and symlinks are resolved, an S3 path by its
bucket and key prefix. The roots are the landing zone (ETL_LANDING_DIR) and the entries of
ETL_ALLOWED_ROOTS (folders, or s3://bucket/prefix). A path is judged when the pipeline file is
validated (`etl validate`, the code location's load), and every file again when a run or a
sensor lists it, since a glob or a symlink can reach what the written path does not name.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from etl_platform.errors import SourceError
from etl_platform.stores.globs import split_glob


def _s3_parts(url: str) -> tuple[str, str]:
    """(bucket, key) of an s3:// URL."""
    bucket, _, key = url.removeprefix("s3://").partition("/")
    return bucket, key


def _inside_s3(key: str, root_key: str) -> bool:
    root = root_key.strip("/")
    return not root or key == root or key.startswith(root + "/")


@dataclass(frozen=True)
class AllowedRoots:
    """The landing zone and the declared roots: a source path must lie inside one of them."""

    landing: str
    declared: tuple[str, ...] = ()

    @classmethod
    def of(cls, landing: str | Path, declared: Iterable[str] = ()) -> AllowedRoots:
        return cls(str(landing), tuple(declared))

    @property
    def roots(self) -> tuple[str, ...]:
        return (self.landing, *self.declared)

    def _absolute(self, path: str) -> str:
        """The location a source path names: an s3:// URL, or a local path with symlinks and `..` resolved."""
        if path.startswith("s3://") or os.path.isabs(path):
            return path if path.startswith("s3://") else os.path.realpath(path)
        if self.landing.startswith("s3://"):
            return self.landing.rstrip("/") + "/" + path
        return os.path.realpath(os.path.join(self.landing, path))

    def contains(self, location: str) -> bool:
        """Whether a local path or s3:// URL lies inside a root (S3 keys may not climb with `..`)."""
        if location.startswith("s3://"):
            bucket, key = _s3_parts(location)
            if ".." in PurePosixPath(key).parts:
                return False
            return any(
                root.startswith("s3://") and _s3_parts(root)[0] == bucket and _inside_s3(key, _s3_parts(root)[1])
                for root in self.roots
            )
        resolved = Path(os.path.realpath(location))
        return any(not root.startswith("s3://") and resolved.is_relative_to(os.path.realpath(root)) for root in self.roots)

    def refusal(self, path: str) -> str | None:
        """Why the source path `path` (its literal part, before any wildcard) is outside the roots, or None."""
        location = self._absolute(split_glob(path)[0])
        if self.contains(location):
            return None
        return (
            f"path {path!r} resolves to {location}, outside the landing zone and the allowed roots "
            f"({', '.join(self.roots)}); put the files under the landing zone, or have the deployment "
            "add their folder or s3://bucket/prefix to ETL_ALLOWED_ROOTS"
        )

    def check_path(self, path: str) -> None:
        """Raise the refusal of a source path, at run time (the spec may not have been validated with these roots)."""
        reason = self.refusal(path)
        if reason is not None:
            raise SourceError(f"source {reason}")

    def check_file(self, url: str) -> None:
        """A listed file (a glob's match, maybe a symlink) must itself lie inside the roots."""
        if not self.contains(url):
            raise SourceError(
                f"{url} resolves to {os.path.realpath(url) if not url.startswith('s3://') else url}, outside the "
                f"landing zone and the allowed roots ({', '.join(self.roots)}); remove the link or add its target's "
                "folder to ETL_ALLOWED_ROOTS"
            )
