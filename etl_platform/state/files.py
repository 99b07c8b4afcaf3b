"""Which files a pipeline has processed, which failed, and which went to the dead-letter prefix.

A file is identified by its URL and its version (S3 ETag, or a local file's mtime and size):
a re-uploaded object is new work. For an append, a file's record also keeps the fingerprint of
the content last processed from it (`content`, with `size`), which a failure keeps too: it tells
a file that grew from one that was rewritten (state.appends). `mark_processed` runs inside the publish transaction, so a
run that fails leaves its files eligible; `record_failure` runs in its own transaction after a
failed run, so the sensor can retry a file alone and give up on it after N failures.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import pyarrow as pa

from etl_platform.errors import EtlError
from etl_platform.stores import StoredFile
from etl_platform.warehouse.base import Warehouse
from etl_platform.warehouse.metadata import FILE_STATE_SCHEMA, META_SCHEMA

PROCESSED, FAILED, DEAD_LETTER = "processed", "failed", "dead_letter"
# Failed for a reason that does not pass by itself (malformed content, a tripped breaker, the
# configuration): the file-arrival sensor dead-letters it at once instead of failing it N times.
FAILED_PERMANENTLY = "failed_permanently"


class AlreadyProcessed(EtlError):
    """Another run published one of these files (same version) first."""


@dataclass(frozen=True)
class FileRecord:
    version: str
    status: str
    failures: int
    last_error: str | None
    run_id: str | None
    size: int | None = None
    content: str | None = None


class FileState:
    def __init__(self, warehouse: Warehouse, pipeline: str):
        self.warehouse = warehouse
        self.pipeline = pipeline
        self.table = warehouse.relation(META_SCHEMA, "file_state")

    def records(self) -> dict[str, FileRecord]:
        """Every file this pipeline has a record of, by URL."""
        rows = self.warehouse.query(
            f"SELECT file_url, version, status, failures, last_error, run_id, size, content FROM {self.table} WHERE pipeline = ?",
            (self.pipeline,),
        )
        return {url: FileRecord(*record) for url, *record in rows}

    def pending(self, files: list[StoredFile], records: dict[str, FileRecord] | None = None) -> list[StoredFile]:
        """The files whose current version is neither processed nor dead-lettered (`records`: read already)."""
        records = self.records() if records is None else records
        return [f for f in files if not self._done(records.get(f.url), f)]

    @staticmethod
    def _done(record: FileRecord | None, file: StoredFile) -> bool:
        return record is not None and record.version == file.version and record.status in (PROCESSED, DEAD_LETTER)

    def _write(
        self,
        files: list[StoredFile],
        status: str,
        run_id: str,
        failures: dict[str, int],
        error: str | None,
        contents: dict[str, str | None] | None = None,
    ) -> None:
        urls = [f.url for f in files]
        for start in range(0, len(urls), 500):
            batch = urls[start : start + 500]
            self.warehouse.execute(
                f"DELETE FROM {self.table} WHERE pipeline = ? AND file_url IN ({', '.join('?' * len(batch))})",
                (self.pipeline, *batch),
            )
        now = datetime.datetime.now(datetime.UTC)
        rows = [
            {
                "pipeline": self.pipeline,
                "file_url": f.url,
                "version": f.version,
                "size": f.size,
                "status": status,
                "failures": failures.get(f.url, 0),
                "last_error": error,
                "run_id": run_id,
                "updated_at": now,
                "content": (contents or {}).get(f.url),
            }
            for f in files
        ]
        if rows:
            self.warehouse.bulk_insert(self.table, pa.Table.from_pylist(rows, FILE_STATE_SCHEMA))

    def mark_processed(
        self,
        files: list[StoredFile],
        run_id: str,
        exclusive: bool,
        contents: dict[str, str] | None = None,
        reread: frozenset[str] = frozenset(),
    ) -> None:
        """Inside the publish transaction: record the files (and an append's `contents`); `exclusive`
        (incremental loads) refuses if another run published one of them first, except the processed
        files this load reads again on purpose (`reread`: copies of a reloaded file's old content)."""
        records = self.records()
        taken = [
            f.url
            for f in files
            if (r := records.get(f.url)) and r.status == PROCESSED and r.version == f.version and f.url not in reread
        ]
        if exclusive and taken:
            raise AlreadyProcessed(f"{len(taken)} of these files were published by another run meanwhile, e.g. {taken[0]}")
        self._write(files, PROCESSED, run_id, {}, None, contents)

    def record_failure(self, files: list[StoredFile], run_id: str, error: str, permanent: bool = False) -> dict[str, int]:
        """In its own transaction: count one more failure for each file's current version.

        A run counts once, however often its step is retried; a version another run has
        published meanwhile stays processed. A `permanent` failure would fail again the same way.
        """
        with self.warehouse.transaction():
            records = self.records()
            failures, counted = {}, []
            for f in files:
                record = records.get(f.url)
                same_version = record is not None and record.version == f.version
                if same_version and (record.status in (PROCESSED, DEAD_LETTER) or record.run_id == run_id):
                    continue
                failures[f.url] = (record.failures if same_version else 0) + 1
                counted.append(f)
            processed_before = {f.url: records[f.url].content for f in counted if f.url in records}
            self._write(counted, FAILED_PERMANENTLY if permanent else FAILED, run_id, failures, error, processed_before)
        return failures

    def mark_dead_letter(self, file: StoredFile, failures: int, error: str | None) -> None:
        with self.warehouse.transaction():
            self._write([file], DEAD_LETTER, "", {file.url: failures}, error)

    def reset(self) -> None:
        """Forget every file (a full refresh, inside its publish transaction)."""
        self.warehouse.execute(f"DELETE FROM {self.table} WHERE pipeline = ?", (self.pipeline,))


@dataclass(frozen=True)
class ProcessedFiles:
    """A file source's checkpoint: the files (and versions) a load read, recorded when it publishes.

    `exclusive` (incremental loads) refuses the publish if another run published one of them
    first; `reset` (a full refresh) forgets every other file of the pipeline.
    """

    files: list[StoredFile]
    exclusive: bool
    reset: bool = False
    contents: dict[str, str] | None = None  # an append's: each file's content fingerprint (state.appends)
    reread: frozenset[str] = frozenset()  # processed files an append reads again (state.appends)

    def save(self, target: Warehouse, pipeline: str, run_id: str) -> None:
        state = FileState(target, pipeline)
        if self.reset:
            state.reset()
        state.mark_processed(self.files, run_id, exclusive=self.exclusive, contents=self.contents, reread=self.reread)
