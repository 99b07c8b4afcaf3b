"""CSV files streamed with pyarrow's incremental reader, every column read as text.

Reading as text keeps dirty values (a word in a numeric column) as data instead of a parse
failure; typing is the job of the `cast` transform, which quarantines values that do not fit.

pyarrow parses through a `LineTap` (sources/csv_lines.py), and `RecordLines`
(sources/csv_records.py) places every record on the physical line an editor shows. A malformed
record (wrong number of fields) is quarantined with its line. An unbalanced quote is quarantined
by the line where it opened, and the read resumes on the next line, so `read` counts what the
file has, not what a runaway quote left of it. A record longer than the reader's block makes the
block grow (up to `source.max_record_mb`) and the read resume where it stood.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from etl_platform.errors import SourceError
from etl_platform.sources.base import BadLine, SourceChunk, with_provenance
from etl_platform.sources.compression import OpenedInput, open_binary
from etl_platform.sources.csv_lines import LineTap, end_marker, utf8_blocks
from etl_platform.sources.csv_records import Placement, RecordLines
from etl_platform.sources.fileset import FileSetSource
from etl_platform.spec.sources import CsvSource
from etl_platform.state.appends import AppendPlan, Tail
from etl_platform.state.files import ProcessedFiles
from etl_platform.stores import FileStore, StoredFile

BLOCK_BYTES = 4 << 20
MB = 1 << 20
# Characters of a malformed line shown in an error message.
SHOWN_CHARACTERS = 200


class CsvFileSource(FileSetSource):
    def __init__(
        self,
        spec: CsvSource,
        files: list[StoredFile],
        store: FileStore,
        processed: ProcessedFiles | None = None,
        plan: AppendPlan | None = None,
        block_bytes: int = BLOCK_BYTES,
    ):
        super().__init__(files, store, processed, plan)
        self.spec = spec
        self.block_bytes = block_bytes  # where the reader's block starts; it grows for longer records

    def read(self, chunk_rows: int) -> Iterator[SourceChunk]:
        for file in self.files:
            with self.store.local_copy(file) as path:
                read = CsvFileRead(self.spec, file, self.block_bytes, self.tail(file))
                read.names = read.header(path)
                yield from read.chunks(path, chunk_rows)


class CsvFileRead:
    """One file's read: parser passes, each from a line, until the end of the file.

    A pass ends at the end of the file, at a runaway quote (the next pass starts on the line after
    the one where it opened), or at a record longer than the block (the next pass starts on that
    record with a larger block).
    """

    def __init__(self, spec: CsvSource, file: StoredFile, block_bytes: int, tail: Tail | None = None):
        self.spec, self.file, self.block = spec, file, block_bytes
        self.names: list[str] = []
        self.tail = tail  # a grown file: only its new lines are read (state.appends), after the header
        self.header_pending = spec.header and tail is None
        self.marker = end_marker(spec.delimiter, spec.quote_char)
        self.counted = tail.start if tail else 0  # bytes of the file reported read

    def _options(self, column_names: list[str] | None, lines: RecordLines | None) -> tuple:
        read = pacsv.ReadOptions(use_threads=False, block_size=self.block, column_names=column_names)
        parse = pacsv.ParseOptions(
            delimiter=self.spec.delimiter,
            quote_char=self.spec.quote_char or False,
            newlines_in_values=True,  # a quoted line break is data, even across the reader's blocks
            invalid_row_handler=lines.on_invalid if lines else (lambda row: "skip"),
        )
        return read, parse

    def header(self, path: Path) -> list[str]:
        if not self.spec.header:
            return list(self.spec.columns or [])
        while True:
            with open_binary(path, self.spec.compression, self.file.name) as opened:
                # A line break ends the file: pyarrow finds no header in a last line without one.
                tap = LineTap(utf8_blocks(opened.stream, self.spec.encoding), 1, "")
                read, parse = self._options(None, None)
                try:
                    names = pacsv.open_csv(tap, read_options=read, parse_options=parse).schema.names
                    break
                except pa.ArrowInvalid as exc:
                    if "straddl" not in str(exc):
                        raise SourceError(
                            f"{self.file.name}:1: cannot read the header row: {exc}; check delimiter and encoding"
                        ) from None
                    self._grow_block(1)
                except UnicodeDecodeError as exc:
                    raise SourceError(self._not_decodable(exc)) from None
        return self._checked_names(names)

    def _checked_names(self, names: list[str]) -> list[str]:
        if self.spec.columns:
            if len(self.spec.columns) != len(names):
                raise SourceError(
                    f"{self.file.name}:1: header has {len(names)} columns but `source.columns` names {len(self.spec.columns)}"
                )
            return list(self.spec.columns)
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise SourceError(f"{self.file.name}:1: duplicate column names {duplicates}; rename them in `source.columns`")
        return names

    def chunks(self, path: Path, chunk_rows: int) -> Iterator[SourceChunk]:
        """Chunks of at most `chunk_rows` rows, then an empty chunk carrying the rest of the byte count."""
        with open_binary(path, self.spec.compression, self.file.name) as opened:
            opened.raw.seek(self.counted)  # a tail starts at a line break of an uncompressed file
            blocks = utf8_blocks(opened.stream, self.spec.encoding)
            start: int | None = self.tail.line if self.tail else 1
            try:
                while start is not None:
                    tap = LineTap(blocks, start, self.marker)
                    lines = RecordLines(self.file.name, tap, start, self.marker, self.spec.max_record_lines)
                    try:
                        start = yield from self._pass(tap, lines, opened, chunk_rows)
                    except pa.ArrowInvalid as exc:
                        if "straddl" not in str(exc):
                            raise SourceError(self._explain(exc)) from None
                        start = self._grow_block(lines.next_line)
                    resumed = tap.resume_at(start) if start is not None else None
                    start, blocks = (start, resumed) if resumed is not None else (None, blocks)
            except UnicodeDecodeError as exc:
                raise SourceError(self._not_decodable(exc)) from None
        yield self._chunk(self._empty(), [], self.file.size - self.counted, [])

    def _pass(self, tap: LineTap, lines: RecordLines, opened: OpenedInput, chunk_rows: int) -> Iterator[SourceChunk]:
        """Parse from the tap's first line; returns the line the next pass starts on (None: the file is read)."""
        read, parse = self._options(self.names, lines)
        convert = pacsv.ConvertOptions(
            column_types={n: pa.string() for n in self.names},
            null_values=self.spec.null_values,
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        )
        reader = pacsv.open_csv(tap, read_options=read, parse_options=parse, convert_options=convert)
        for batch in itertools.chain(reader, [None]):
            final = batch is None
            rows = pa.RecordBatch.from_pylist([], schema=reader.schema) if final else batch
            placement = lines.place(rows, final)
            yield from self._emit(rows, placement, opened, chunk_rows)
            if placement.resume_line is not None:
                return placement.resume_line
            tap.release_before(lines.next_line)
        return None

    def _emit(self, batch: pa.RecordBatch, placement: Placement, opened: OpenedInput, chunk_rows: int) -> Iterator[SourceChunk]:
        """The kept rows of a placed batch, at most `chunk_rows` a chunk, and its malformed lines."""
        if placement.bad and self.spec.on_bad_line == "fail":
            raise SourceError(self._refusal(placement.bad[0]))
        rows, lines = batch.slice(0, placement.keep), placement.lines
        if self.header_pending and placement.keep:
            rows, lines, self.header_pending = rows.slice(1), lines[1:], False
        consumed, self.counted = opened.consumed() - self.counted, opened.consumed()
        bad = placement.bad
        for offset in range(0, len(rows), chunk_rows):
            yield self._chunk(rows.slice(offset, chunk_rows), lines[offset : offset + chunk_rows], consumed, bad)
            consumed, bad = 0, []
        if bad or (consumed and not len(rows)):
            yield self._chunk(self._empty(), [], consumed, bad)

    def _chunk(self, rows: pa.RecordBatch | pa.Table, lines, consumed: int, bad: list[BadLine]) -> SourceChunk:
        table = rows if isinstance(rows, pa.Table) else pa.Table.from_batches([rows])
        return SourceChunk(with_provenance(table, self.file.name, pa.array(lines, pa.int64())), consumed, bad)

    def _empty(self) -> pa.Table:
        return pa.table({n: pa.array([], pa.string()) for n in self.names})

    def _grow_block(self, line: int) -> int:
        """A record longer than the block: double the block (up to `max_record_mb`) and read again from `line`."""
        limit = self.spec.max_record_mb * MB
        if self.block >= limit:
            raise SourceError(
                f"{self.file.name}:{line}: a record starting on or after this line is longer than "
                f"`source.max_record_mb` ({self.spec.max_record_mb} MB); raise it if the file holds values that long, "
                f"or look for an unbalanced quote there"
            )
        self.block = min(self.block * 2, limit)
        return line

    def _refusal(self, line: BadLine) -> str:
        text = line.text if len(line.text) <= SHOWN_CHARACTERS else line.text[:SHOWN_CHARACTERS] + "..."
        return (
            f"{self.file.name}:{line.line}: malformed line: {line.reason}: {text!r}; fix the line, "
            f"or set `source.on_bad_line: quarantine` to keep it in quarantine and load the rest"
        )

    def _not_decodable(self, exc: UnicodeDecodeError) -> str:
        return f"{self.file.name}: text is not valid {self.spec.encoding}: {exc}; set `source.encoding` (e.g. latin-1)"

    def _explain(self, exc: Exception) -> str:
        text = str(exc)
        if "UTF8" in text or "utf-8" in text.lower():
            return f"{self.file.name}: text is not valid {self.spec.encoding}: {text}; set `source.encoding` (e.g. latin-1)"
        return f"{self.file.name}: cannot parse CSV: {text}; check `source.delimiter`, `quote_char` and `encoding`"
