"""Where a pipeline's files are: a store, a key prefix, and a glob pattern below it.

A source path such as `orders/orders_*.csv` is relative to the landing zone; `s3://bucket/key`
and absolute paths name their own store. The part before the first wildcard is the prefix (what
S3 lists), the rest the pattern (`*` and `?` stay within one folder, `**/` crosses folders).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from etl_platform.breaker import BreakerBoard
from etl_platform.errors import SourceError
from etl_platform.stores.base import FileStore, StoredFile
from etl_platform.stores.globs import WILDCARD, split_glob
from etl_platform.stores.local import LocalStore
from etl_platform.stores.roots import AllowedRoots
from etl_platform.stores.s3 import S3Store


def glob_matcher(pattern: str) -> Callable[[str], bool]:
    """A predicate for keys relative to the prefix."""
    regex, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex, i = regex + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            regex, i = regex + ".*", i + 2
        elif pattern[i] == "*":
            regex, i = regex + "[^/]*", i + 1
        elif pattern[i] == "?":
            regex, i = regex + "[^/]", i + 1
        elif pattern[i] == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 1)
            body = pattern[i + 1 : end]
            regex, i = regex + "[" + ("^/" + body[1:] if body.startswith("!") else body) + "]", end + 1
        else:
            regex, i = regex + re.escape(pattern[i]), i + 1
    compiled = re.compile(regex + r"\Z")
    return lambda relative: bool(compiled.match(relative))


def open_store(url: str, s3_client: Callable[[], Any], breakers: BreakerBoard) -> FileStore:
    """A store from `s3://bucket/prefix` (behind the endpoint's breaker on `breakers`) or a folder path."""
    if url.startswith("s3://"):
        bucket, _, root = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise SourceError(f"{url!r} names no bucket; write s3://bucket/prefix")
        return S3Store(bucket, root, s3_client(), breakers)
    return LocalStore(Path(url))


@dataclass(frozen=True)
class FileLocation:
    """Files a source path names; each listed file must lie inside `roots` (a glob or a symlink may reach out)."""

    store: FileStore
    prefix: str
    pattern: str
    roots: AllowedRoots

    @classmethod
    def of(
        cls,
        path: str,
        landing: FileStore,
        s3_client: Callable[[], Any],
        breakers: BreakerBoard,
        roots: AllowedRoots,
    ) -> FileLocation:
        """The location a source path names: relative to the landing zone, or in its own store, inside `roots`."""
        roots.check_path(path)
        prefix, pattern = split_glob(path)
        if not pattern:  # one file: its folder is the prefix, its name the pattern
            cut = path.rfind("/") + 1
            prefix, pattern = path[:cut], path[cut:]
        if path.startswith("s3://") or Path(path).is_absolute():
            return cls(open_store(prefix, s3_client, breakers), "", pattern, roots)
        return cls(landing, prefix, pattern, roots)

    @property
    def url(self) -> str:
        return self.store.file_url(self.prefix + self.pattern)

    def matching(self, excluded_prefix: str | None = None) -> Iterator[StoredFile]:
        """Files under the prefix that match the pattern; the store lists only keys starting with its literal part."""
        matches = glob_matcher(self.pattern)
        wildcard = WILDCARD.search(self.pattern)
        literal = self.pattern[: wildcard.start()] if wildcard else self.pattern
        for file in self.store.list(self.prefix + literal):
            if excluded_prefix and file.key.startswith(excluded_prefix):
                continue
            if matches(file.key[len(self.prefix) :]):
                self.roots.check_file(file.url)
                yield file

    def files(self) -> list[StoredFile]:
        """Matching files sorted by key; none is an error that says where it looked."""
        found = sorted(self.matching(), key=lambda f: f.key)
        if not found:
            raise SourceError(
                f"no input files match {self.url}; put files there or fix the pipeline's path "
                f"(relative paths are under the landing zone, ETL_LANDING_DIR)"
            )
        return found
