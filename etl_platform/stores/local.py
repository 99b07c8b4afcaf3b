"""A local folder as a file store: the embedded landing zone and lake."""

from __future__ import annotations

import datetime
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from etl_platform.fingerprint import hash_prefix
from etl_platform.stores.base import FileStore, StoredFile


class LocalStore(FileStore):
    def __init__(self, root: Path):
        self.root = Path(root)
        self.url = str(self.root)

    def _file(self, path: Path, stat: os.stat_result) -> StoredFile:
        key = path.relative_to(self.root).as_posix()
        modified = datetime.datetime.fromtimestamp(stat.st_mtime, datetime.UTC)
        # mtime in nanoseconds and size: a rewritten file gets a new version without hashing it on every listing
        return StoredFile(key, stat.st_size, f"{stat.st_mtime_ns:x}-{stat.st_size:x}", modified, str(path))

    def list(self, prefix: str) -> Iterator[StoredFile]:
        """Files under the folder part of `prefix` whose key starts with `prefix`; hidden files are skipped."""
        folder = self.root / prefix.rpartition("/")[0]
        if not folder.is_dir():
            return
        for directory, subdirs, names in os.walk(folder):
            subdirs[:] = [d for d in subdirs if not d.startswith(".")]
            for name in names:
                path = Path(directory) / name
                if name.startswith(".") or not path.relative_to(self.root).as_posix().startswith(prefix):
                    continue
                try:
                    yield self._file(path, path.stat())
                except FileNotFoundError:  # moved away while listing: the next listing decides
                    continue

    @contextmanager
    def local_copy(self, file: StoredFile) -> Iterator[Path]:
        yield self.root / file.key

    def upload(self, local: Path, key: str) -> None:
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.part")
        shutil.copyfile(local, temporary)
        os.replace(temporary, target)

    def put_bytes(self, key: str, data: bytes) -> None:
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.part")
        temporary.write_bytes(data)
        os.replace(temporary, target)

    def move(self, key: str, to_key: str) -> None:
        target = self.root / to_key
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.root / key, target)

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            (self.root / key).unlink(missing_ok=True)

    def staging_folder(self, prefix: str, run_tag: str, run_is_live: Callable[[str], bool]) -> Path:
        """Beside the dataset folder, so publishing is a rename; leftovers of killed runs are cleared first
        (a live run's staging stays: concurrent runs of a dataset each write their own)."""
        target = self.root / prefix.rstrip("/")
        marker = f".{target.name}.staging-"
        for leftover in target.parent.glob(f"{marker}*"):
            if not run_is_live(leftover.name[len(marker) :]):
                shutil.rmtree(leftover, ignore_errors=True)
        staging = target.parent / f".{target.name}.staging-{run_tag}"
        staging.mkdir(parents=True)
        return staging

    def publish_folder(self, staging: Path, prefix: str, replace: bool, rename: Callable[[str], str]) -> None:
        """Replace: swap the folders by two renames. Append: move each part in.

        Called under the dataset lock (warehouse.locks), so no other publish is between its renames:
        a retired folder without a target is a replace killed between the two, and is put back first.
        """
        target = self.root / prefix.rstrip("/")
        retired = target.parent / f".{target.name}.retired"
        if retired.exists() and not target.exists():
            os.replace(retired, target)
        if replace:
            shutil.rmtree(retired, ignore_errors=True)
            if target.exists():
                os.replace(target, retired)
            os.replace(staging, target)
            shutil.rmtree(retired, ignore_errors=True)
            return
        for part in sorted(p for p in staging.rglob("*") if p.is_file()):
            destination = target / rename(part.relative_to(staging).as_posix())
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.replace(part, destination)
        shutil.rmtree(staging, ignore_errors=True)

    def content_fingerprint(self, file: StoredFile) -> str:
        """Hash of the bytes: a local file has no server-side checksum to trust."""
        with (self.root / file.key).open("rb") as handle:
            return hash_prefix(handle, file.size)

    def prefix_matches(self, local: Path, length: int, fingerprint: str) -> bool:
        with local.open("rb") as handle:
            return hash_prefix(handle, length) == fingerprint
