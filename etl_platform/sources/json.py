"""JSON array and JSON Lines files, streamed record by record into text columns.

Every scalar becomes its JSON text and every nested value its JSON document, so a field that
holds a number in one record and a word in another stays loadable; `cast` types it. JSON arrays
are streamed with ijson, so a large array never sits in memory whole.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import ijson
import orjson
import pyarrow as pa

from etl_platform.errors import SourceError
from etl_platform.sources.base import BadLine, SourceChunk, with_provenance
from etl_platform.sources.compression import open_binary
from etl_platform.sources.fileset import FileSetSource
from etl_platform.spec.sources import JsonLinesSource, JsonSource
from etl_platform.state.appends import AppendPlan
from etl_platform.state.files import ProcessedFiles
from etl_platform.stores import FileStore, StoredFile


def _as_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return orjson.dumps(value, default=str).decode()


def records_to_table(records: list[dict[str, Any]], file: str, lines: list[int]) -> pa.Table:
    """Text columns in order of first appearance; missing keys are nulls."""
    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(record))
    columns = {n: pa.array([_as_text(r.get(n)) for r in records], pa.string()) for n in names}
    return with_provenance(pa.table(columns) if columns else pa.table({}), file, pa.array(lines, pa.int64()))


class _JsonFiles(FileSetSource, ABC):
    def __init__(
        self,
        spec: JsonSource | JsonLinesSource,
        files: list[StoredFile],
        store: FileStore,
        processed: ProcessedFiles | None = None,
        plan: AppendPlan | None = None,
    ):
        super().__init__(files, store, processed, plan)
        self.spec = spec

    def read(self, chunk_rows: int) -> Iterator[SourceChunk]:
        for file in self.files:
            tail = self.tail(file)  # a grown JSON Lines file: only its new lines (state.appends)
            start, first_line = (tail.start, tail.line) if tail else (0, 1)
            with self.store.local_copy(file) as path, open_binary(path, self.spec.compression, file.name) as opened:
                opened.raw.seek(start)
                records = self._records(file, opened.stream, first_line)
                yield from self._chunks(file, records, chunk_rows, opened.consumed, start)

    @abstractmethod
    def _records(self, file: StoredFile, stream: Any, first_line: int) -> Iterable[tuple[int, dict[str, Any] | BadLine]]:
        """(position, record or bad line) pairs in file order; the stream's first line is `first_line`."""

    @staticmethod
    def _chunks(
        file: StoredFile, items: Iterable[tuple[int, Any]], chunk_rows: int, consumed: Callable[[], int], counted: int
    ) -> Iterator[SourceChunk]:
        records: list[dict[str, Any]] = []
        lines: list[int] = []
        bad: list[BadLine] = []
        for number, item in items:
            if isinstance(item, BadLine):
                bad.append(item)
                continue
            records.append(item)
            lines.append(number)
            if len(records) >= chunk_rows:
                position = consumed()
                yield SourceChunk(records_to_table(records, file.name, lines), position - counted, bad)
                records, lines, bad, counted = [], [], [], position
        yield SourceChunk(records_to_table(records, file.name, lines), file.size - counted, bad)


class JsonLinesFileSource(_JsonFiles):
    """One JSON object per line; `line` is the physical line number."""

    def _records(self, file: StoredFile, stream: Any, first_line: int) -> Iterable[tuple[int, dict[str, Any] | BadLine]]:
        for number, raw in enumerate(stream, start=first_line):
            if not raw.strip():
                continue
            try:
                record = orjson.loads(raw)
                reason = None if isinstance(record, dict) else f"expected a JSON object, found {type(record).__name__}"
            except orjson.JSONDecodeError as exc:
                reason = f"invalid JSON: {exc}"
            if reason is None:
                yield number, record
                continue
            if self.spec.on_bad_line == "fail":
                raise SourceError(f"{file.name}:{number}: {reason}; fix the line, or set `source.on_bad_line: quarantine`")
            yield number, BadLine(file.name, number, raw.decode("utf-8", "replace").rstrip("\n"), reason)


class JsonArrayFileSource(_JsonFiles):
    """A top-level JSON array of objects; `line` is the record's 1-based position in the array."""

    def _records(self, file: StoredFile, stream: Any, first_line: int) -> Iterable[tuple[int, dict[str, Any] | BadLine]]:
        try:
            for number, record in enumerate(ijson.items(stream, "item", use_float=True), start=1):
                if isinstance(record, dict):
                    yield number, record
                else:
                    reason = f"expected a JSON object, found {type(record).__name__}"
                    yield number, BadLine(file.name, number, orjson.dumps(record, default=str).decode(), reason)
        except ijson.JSONError as exc:
            raise SourceError(
                f"{file.name}: invalid JSON: {exc}; a json source must hold one array of objects "
                f"(use `type: jsonl` for one object per line)"
            ) from None
