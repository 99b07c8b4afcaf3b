"""CSV files streamed with pyarrow's incremental reader, every column read as text.

Reading as text keeps dirty values (a word in a numeric column) as data instead of a parse
failure; typing is the job of the `cast` transform, which quarantines values that do not fit.
Malformed lines (wrong number of fields) are caught by pyarrow's invalid-row handler with their
physical line number.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from etl_platform.errors import SourceError
from etl_platform.sources.base import BadLine, SourceChunk, with_provenance
from etl_platform.sources.compression import open_binary
from etl_platform.sources.fileset import FileSetSource
from etl_platform.spec.sources import CsvSource
from etl_platform.state.appends import AppendPlan, Tail
from etl_platform.state.files import ProcessedFiles
from etl_platform.stores import FileStore, StoredFile

BLOCK_BYTES = 4 << 20


class CsvFileSource(FileSetSource):
    def __init__(
        self,
        spec: CsvSource,
        files: list[StoredFile],
        store: FileStore,
        processed: ProcessedFiles | None = None,
        plan: AppendPlan | None = None,
    ):
        super().__init__(files, store, processed, plan)
        self.spec = spec

    def _options(self, column_names: list[str] | None, bad: list[BadLine], name: str, strict: bool, tail: Tail | None = None):
        """Reader options; a malformed line is recorded, then skipped (quarantine) or ends the read (strict).

        Reading a grown file's `tail` starts after its header, so lines count from the tail's line.
        """
        spec = self.spec
        lines_before = tail.line - 1 if tail else 0

        def on_invalid(row: pacsv.InvalidRow) -> str:
            line = row.number + lines_before if row.number is not None else None
            bad.append(BadLine(name, line, row.text, f"expected {row.expected_columns} fields, found {row.actual_columns}"))
            return "error" if strict else "skip"

        read = pacsv.ReadOptions(
            use_threads=False,
            block_size=BLOCK_BYTES,
            encoding=spec.encoding,
            column_names=column_names,
            skip_rows=1 if (spec.header and column_names and tail is None) else 0,
        )
        parse = pacsv.ParseOptions(
            delimiter=spec.delimiter,
            quote_char=spec.quote_char or False,
            invalid_row_handler=on_invalid,
        )
        return read, parse

    def _header(self, file: StoredFile, path: Path) -> list[str]:
        if not self.spec.header:
            return list(self.spec.columns or [])
        with open_binary(path, self.spec.compression, file.name) as opened:
            read, parse = self._options(None, [], file.name, strict=False)
            try:
                names = pacsv.open_csv(opened.stream, read_options=read, parse_options=parse).schema.names
            except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
                raise SourceError(f"{file.name}:1: cannot read the header row: {exc}; check delimiter and encoding") from None
        if self.spec.columns:
            if len(self.spec.columns) != len(names):
                raise SourceError(
                    f"{file.name}:1: header has {len(names)} columns but `source.columns` names {len(self.spec.columns)}"
                )
            return list(self.spec.columns)
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise SourceError(f"{file.name}:1: duplicate column names {duplicates}; rename them in `source.columns`")
        return names

    def read(self, chunk_rows: int) -> Iterator[SourceChunk]:
        for file in self.files:
            with self.store.local_copy(file) as path:
                yield from self._read_file(file, path, chunk_rows)

    def _read_file(self, file: StoredFile, path: Path, chunk_rows: int) -> Iterator[SourceChunk]:
        """Chunks of at most `chunk_rows` rows, then an empty chunk carrying the byte count."""
        names = self._header(file, path)
        tail = self.tail(file)
        first_data_line = tail.line if tail else 2 if self.spec.header else 1
        bad: list[BadLine] = []
        read, parse = self._options(names, bad, file.name, strict=self.spec.on_bad_line == "fail", tail=tail)
        convert = pacsv.ConvertOptions(
            column_types={n: pa.string() for n in names},
            null_values=self.spec.null_values,
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        )
        rows_seen = reported = 0
        bytes_counted = tail.start if tail else 0
        with open_binary(path, self.spec.compression, file.name) as opened:
            opened.raw.seek(bytes_counted)  # a grown file: only its new lines (uncompressed, see state.appends)
            try:
                for batch in pacsv.open_csv(opened.stream, read_options=read, parse_options=parse, convert_options=convert):
                    consumed, bytes_counted = opened.consumed() - bytes_counted, opened.consumed()
                    for offset in range(0, len(batch), chunk_rows):
                        part = batch.slice(offset, chunk_rows)
                        lines = self._line_numbers(rows_seen, len(part), first_data_line, bad)
                        rows_seen += len(part)
                        new_bad, reported = bad[reported:], len(bad)
                        table = with_provenance(pa.Table.from_batches([part]), file.name, lines)
                        yield SourceChunk(table, consumed if offset == 0 else 0, new_bad)
            except pa.ArrowInvalid as exc:
                raise SourceError(self._explain(file, exc, bad)) from None
        empty = pa.table({n: pa.array([], pa.string()) for n in names})
        yield SourceChunk(with_provenance(empty, file.name, pa.array([], pa.int64())), file.size - bytes_counted, bad[reported:])

    @staticmethod
    def _line_numbers(start: int, count: int, first_line: int, bad: list[BadLine]) -> pa.Array:
        """Physical line of each row, skipping the lines rejected as malformed (exact without multi-line fields)."""
        lines = np.arange(start, start + count, dtype=np.int64) + first_line
        skipped = sorted(b.line for b in bad if b.line is not None)
        for bad_line in skipped:
            lines[lines >= bad_line] += 1
        return pa.array(lines)

    def _explain(self, file: StoredFile, exc: Exception, bad: list[BadLine]) -> str:
        text = str(exc)
        if self.spec.on_bad_line == "fail" and bad:
            line = bad[-1]
            return (
                f"{file.name}:{line.line}: malformed line: {line.reason}: {line.text!r}; fix the line, "
                f"or set `source.on_bad_line: quarantine` to keep it in quarantine and load the rest"
            )
        if "UTF8" in text or "utf-8" in text.lower():
            return f"{file.name}: text is not valid {self.spec.encoding}: {text}; set `source.encoding` (e.g. latin-1)"
        return f"{file.name}: cannot parse CSV: {text}; check `source.delimiter`, `quote_char` and `encoding`"
