"""On which physical line each record of a CSV parse starts, and which records are runaways.

pyarrow numbers the records it parses (`InvalidRow.number`) but says nothing of lines. A record
spans one line plus the line breaks inside its quoted values; the blank lines between records,
which the parser skips, come from the `LineTap`. So the line of every record is exact, whatever
quoted newlines and blank lines come before it.

A record is a runaway when its quoted value never closes (the tap's end marker landed in it),
when it runs over `max_record_lines` lines, or when it spans lines and has the wrong number of
fields: the marks of an unbalanced quote that swallowed the lines after it. A runaway is not
kept: its first line is quarantined, and the reader resumes on the next line, so every line
after it is read on its own and `read` counts what the file has.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from etl_platform.sources.base import BadLine
from etl_platform.sources.csv_lines import LineTap


def line_breaks(values: pa.Array) -> np.ndarray:
    """Line breaks (LF, CRLF, lone CR) in each value; a null has none.

    Most values hold none: one look at the bytes of all values decides, before any counting."""
    if pa.types.is_string(values.type) and len(values):
        data = values.buffers()[2]
        bytes_ = np.frombuffer(data, np.uint8) if data is not None else np.empty(0, np.uint8)
        if not (np.any(bytes_ == 10) or np.any(bytes_ == 13)):
            return np.zeros(len(values), np.int64)
    breaks = pc.subtract(
        pc.add(pc.count_substring(values, "\n"), pc.count_substring(values, "\r")), pc.count_substring(values, "\r\n")
    )
    return breaks.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)


def record_spans(batch: pa.RecordBatch) -> np.ndarray:
    """Physical lines each parsed row spans."""
    spans = np.ones(len(batch), np.int64)
    for column in batch.columns:
        spans += line_breaks(column)
    return spans


@dataclass
class Placement:
    """Where a batch's records are: the first `keep` rows are kept (at `lines`), the malformed ones are
    `bad`; after a runaway (the last of `bad`), reading resumes on `resume_line`."""

    keep: int
    lines: np.ndarray
    bad: list[BadLine] = field(default_factory=list)
    resume_line: int | None = None


class RecordLines:
    """Places the records of one parse (one pyarrow reader) that starts on physical line `first_line`."""

    def __init__(self, file_name: str, tap: LineTap, first_line: int, marker: str, max_record_lines: int):
        self.file_name, self.tap, self.marker, self.max_record_lines = file_name, tap, marker, max_record_lines
        self.record = 1  # pyarrow's number of the next record
        self.next_line = first_line  # no record starts before it
        self._invalid: dict[int, pacsv.InvalidRow] = {}

    def on_invalid(self, row: pacsv.InvalidRow) -> str:
        """pyarrow's handler: note the row (placed later, by its number, among the rows parsed) and skip it."""
        self._invalid[row.number] = row
        return "skip"

    def place(self, batch: pa.RecordBatch, final: bool) -> Placement:
        """Place a batch's rows and the malformed records between them; `final` at the end of the parse."""
        valid_spans = record_spans(batch)
        unclosed, n = self._end_marker(batch)
        invalid = self._invalid_before(n, final)
        positions = [position for position, _ in invalid]
        spans = np.insert(valid_spans[:n], positions, [1 + int(line_breaks(pa.array([r.text]))[0]) for _, r in invalid])
        at = np.asarray(positions, np.int64) + np.arange(len(invalid))  # their places among all records
        rows = dict(zip(at.tolist(), [row for _, row in invalid], strict=True))
        is_invalid = np.zeros(len(spans), bool)
        is_invalid[at] = True
        ends_open = [i for i, row in rows.items() if row.text.endswith(self.marker)]
        if unclosed is not None:
            ends_open.append(unclosed + int(np.searchsorted(positions, unclosed, side="right")))
        suspect = (spans > self.max_record_lines) | (is_invalid & (spans > 1))
        suspect[ends_open] = True
        runaway = int(np.argmax(suspect)) if suspect.any() else len(spans)
        starts = self._physical_starts(spans)
        bad = [BadLine(self.file_name, int(starts[i]), row.text, field_count(row)) for i, row in rows.items() if i < runaway]
        placement = Placement(int(np.count_nonzero(~is_invalid[:runaway])), starts[:runaway][~is_invalid[:runaway]], bad)
        if runaway < len(spans):
            line = int(starts[runaway])
            reason = self._runaway_reason(rows.get(runaway), int(spans[runaway]), runaway in ends_open)
            bad.append(BadLine(self.file_name, line, self.tap.line_text(line), reason))
            placement.resume_line = line + 1
        elif len(spans):
            self.record += len(spans)
            self.next_line = int(starts[-1] + spans[-1])
        return placement

    def _end_marker(self, batch: pa.RecordBatch) -> tuple[int | None, int]:
        """(index of a row whose quote ran into the end marker, rows before the marker row)."""
        n = len(batch)
        if not n:
            return None, n
        last = batch.slice(n - 1).to_pylist()[0]
        if list(last.values()) == [self.marker]:
            return None, n - 1  # the marker, parsed as a row of its own (one-column files)
        if any(isinstance(v, str) and v.endswith(self.marker) for v in last.values()):
            return n - 1, n
        return None, n

    def _invalid_before(self, n: int, final: bool) -> list[tuple[int, pacsv.InvalidRow]]:
        """Malformed records among the next `n` parsed rows: (row index they precede, row)."""
        placed: list[tuple[int, pacsv.InvalidRow]] = []
        for number in sorted(self._invalid):
            index = number - self.record - len(placed)
            if index > n or (index == n and not final):
                break
            row = self._invalid.pop(number)
            if row.text != self.marker:
                placed.append((index, row))
        return placed

    def _physical_starts(self, spans: np.ndarray) -> np.ndarray:
        """First line of each record: records follow each other, with the blank lines between them skipped."""
        starts = self.next_line + np.concatenate(([0], np.cumsum(spans)[:-1])).astype(np.int64)
        if not len(spans):
            return starts
        last_end = int(starts[-1] + spans[-1] - 1)
        separators: list[int] = []
        for blank in self.tap.blank_lines:
            if blank < self.next_line:
                continue
            compressed = blank - len(separators)
            if compressed > last_end:
                break
            index = int(np.searchsorted(starts, compressed))
            if index < len(starts) and starts[index] == compressed:
                separators.append(compressed)  # a blank line where a record would start: skipped
        return starts + np.searchsorted(np.array(separators, np.int64), starts, side="right")

    def _runaway_reason(self, row: pacsv.InvalidRow | None, lines: int, ends_open: bool) -> str:
        resume = "the line is set aside and reading resumes on the next line"
        if ends_open:
            return f"unbalanced quote: a quoted value opened on this line never closes (the file ends inside it); {resume}"
        if row is not None and lines <= self.max_record_lines:
            return f"{field_count(row)}, over {lines} lines (an unbalanced quote?); {resume}"
        return (
            f"a quoted value from this line runs over {lines} lines, more than `source.max_record_lines` "
            f"({self.max_record_lines}): an unbalanced quote? {resume}; raise `max_record_lines` if values span that many lines"
        )


def field_count(row: pacsv.InvalidRow) -> str:
    return f"expected {row.expected_columns} fields, found {row.actual_columns}"
