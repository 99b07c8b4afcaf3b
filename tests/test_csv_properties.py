"""Generated CSV files: every physical data line is published, quarantined with its line, or filtered.

The expected outcome is computed independently, with Python's csv module over the same bytes: its
records, and the line each starts on, are the reference. Where a file is ambiguous (a quote that
never closes, a quoted value over `max_record_lines` lines, a record over several lines with the
wrong number of fields), the documented rule applies to the reference too: the record's first line
is quarantined and reading resumes on the next line.
"""

from __future__ import annotations

import csv
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etl_platform.engine.runner import run_pipeline
from etl_platform.sources.csv import CsvFileSource
from etl_platform.spec import spec_from_document
from etl_platform.stores import FileLocation, LocalStore
from tests.conftest import environment_for, rows

MAX_RECORD_LINES = 4
TEXT = st.text(
    st.one_of(
        st.sampled_from(list('ab ,"\n\r\x00\x01\x0b\x1f\x85\u2028é中🙂')),
        st.characters(codec="utf-8", exclude_categories=["Cs"]),
    ),
    max_size=8,
)


@st.composite
def fields(draw: st.DrawFn) -> str:
    value = draw(st.one_of(TEXT, TEXT.map(lambda t: t * 300)))  # now and then a long value
    style = draw(st.sampled_from(["quoted", "quoted", "plain", "stray"]))
    if style == "stray":  # a quote that never closes, unless a later one does
        return '"' + value.replace('"', "")
    if style == "plain" and not re.search(r"[,\r\n]", value) and not value.startswith('"'):
        return value
    return '"' + value.replace('"', '""') + '"'


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[bytes, int]:
    columns = draw(st.integers(1, 3))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    lines = [",".join(f"c{i}" for i in range(columns))]
    for _ in range(draw(st.integers(0, 12))):
        if draw(st.integers(0, 5)) == 0:
            lines.append("")  # a blank line
            continue
        count = columns + draw(st.sampled_from([0, 0, 0, 0, 1, -1])) if columns > 1 else 1
        lines.append(",".join(draw(fields()) for _ in range(max(count, 1))))
    text = newline.join(lines) + draw(st.sampled_from([newline, ""]))
    bom = draw(st.sampled_from(["", "\ufeff"]))
    return (bom + text).encode("utf-8"), columns


def physical_lines(text: str) -> list[str]:
    """Lines as an editor shows them: ended by LF, CRLF or a lone CR."""
    return re.findall(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$", text)


@dataclass
class Expected:
    rows: list[tuple[int, list[str]]] = field(default_factory=list)  # (line, values)
    bad_lines: list[int] = field(default_factory=list)


def reference(data: bytes, columns: int) -> Expected:
    """What the file holds, by Python's csv module, with the resume rule for runaway records."""
    csv.field_size_limit(1 << 30)
    lines = physical_lines(data.decode("utf-8-sig"))
    expected, start, header = Expected(), 0, True
    while start is not None:
        start, header = _parse_from(lines, start, columns, header, expected)
    return expected


def _parse_from(lines: list[str], start: int, columns: int, header: bool, expected: Expected) -> tuple[int | None, bool]:
    """Records from line index `start`; returns where to resume after a runaway (None: at the end)."""
    sentinel = "\x02end\x02"
    reader = csv.reader([*lines[start:], "\n", sentinel])
    before = 0
    for values in reader:
        first, last = start + before + 1, start + reader.line_num
        before = reader.line_num
        if not values or values == [sentinel]:
            continue
        span = last - first + 1
        open_at_end = values[-1].endswith(sentinel)
        if open_at_end or span > MAX_RECORD_LINES or (span > 1 and len(values) != columns):
            expected.bad_lines.append(first)
            return first, header
        if header:
            header = False
        elif len(values) != columns:
            expected.bad_lines.append(first)
        else:
            expected.rows.append((first, values))
    return None, header


def read_source(data: bytes, folder: Path, block_bytes: int) -> tuple[list[tuple[int, list[str]]], list[int], int]:
    (folder / "input.csv").write_bytes(data)
    spec = spec_from_document(
        {
            "id": "generated",
            "source": {"type": "csv", "path": "input.csv", "max_record_lines": MAX_RECORD_LINES, "max_record_mb": 1},
            "destination": {"dataset": "generated.target"},
        }
    )
    store = LocalStore(folder)
    source = CsvFileSource(spec.source, FileLocation(store, "", "input.csv").files(), store, block_bytes=block_bytes)
    published, bad, read = [], [], 0
    for chunk in source.read(7):
        data_columns = [c for c in chunk.table.column_names if not c.startswith("_etl_")]
        for row in chunk.table.to_pylist():
            published.append((row["_etl_source_line"], ["" if row[c] is None else row[c] for c in data_columns]))
        bad += [line.line for line in chunk.bad_lines]
        read += len(chunk.table) + len(chunk.bad_lines)
    return published, bad, read


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(csv_files(), st.sampled_from([64, 256, 4096]))
def test_every_record_is_read_on_its_line(generated: tuple[bytes, int], block_bytes: int) -> None:
    data, columns = generated
    expected = reference(data, columns)
    with tempfile.TemporaryDirectory() as folder:
        published, bad, read = read_source(data, Path(folder), block_bytes)
    assert published == expected.rows
    assert bad == expected.bad_lines
    assert read == len(expected.rows) + len(expected.bad_lines)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(csv_files())
def test_every_record_is_published_quarantined_or_filtered(generated: tuple[bytes, int]) -> None:
    """The whole load, on SQLite: rows with a NUL byte are quarantined by the destination, rows the
    filter drops are filtered, and the rest is published; the counts add up to what the file holds."""
    data, columns = generated
    expected = reference(data, columns)
    with tempfile.TemporaryDirectory() as folder:
        landing = Path(folder) / "landing"
        landing.mkdir()
        (landing / "input.csv").write_bytes(data)
        url = f"sqlite:///{Path(folder) / 'warehouse.sqlite'}"
        spec = spec_from_document(
            {
                "id": "generated",
                "source": {"type": "csv", "path": "input.csv", "max_record_lines": MAX_RECORD_LINES},
                "transforms": [{"filter": "c0 IS NULL OR c0 <> 'a'"}],
                "destination": {"dataset": "generated.target", "write": "replace"},
            }
        )
        report = run_pipeline(spec, environment_for(url, landing))
        quarantine = rows(url, "SELECT rule, source_line FROM _etl.quarantine") if report.rows_quarantined else []
    kept = [(line, values) for line, values in expected.rows if values[0] != "a"]
    unstorable = sorted(line for line, values in kept if any("\x00" in v for v in values))
    assert report.rows_read == len(expected.rows) + len(expected.bad_lines)
    assert report.rows_filtered == len(expected.rows) - len(kept)
    assert sorted(r["source_line"] for r in quarantine if r["rule"] == "malformed_line") == expected.bad_lines
    assert sorted(r["source_line"] for r in quarantine if r["rule"] == "unstorable_value") == unstorable
    assert report.rows_published == len(kept) - len(unstorable)
