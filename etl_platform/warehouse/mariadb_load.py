"""Arrow tables as the text `LOAD DATA LOCAL INFILE` reads by default (tab-separated, `\\N` for NULL).

Encoded column by column with Arrow compute, never row by row in Python, because this is the MariaDB
warehouse's bulk path: LOAD DATA parses this text faster than any batch of INSERT statements
(docs/decisions.md has the measurement).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

# LOAD DATA's default escapes: a backslash, the field and line separators and NUL are escaped.
_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\x00", "\\0"))


def _as_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """One column as LOAD DATA text: timestamps as UTC wall time, booleans as 0/1, strings escaped."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        column, kind = column.cast(kind.value_type), kind.value_type
    if pa.types.is_timestamp(kind):
        column = column.cast(pa.timestamp("us"), safe=False)  # tz-aware values are UTC underneath
    elif pa.types.is_boolean(kind):
        column = column.cast(pa.int8())
    text = column.cast(pa.string())
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind):
        for old, new in _ESCAPES:
            text = pc.replace_substring(text, old, new)
    return pc.fill_null(text, "\\N")


def tsv_bytes(data: pa.Table) -> bytes:
    """The rows of `data` as LOAD DATA's default format, one line per row.

    Each row is joined with its trailing newline by Arrow and the bytes are taken straight from the
    joined array's data buffer, so no row ever becomes a Python string (the bulk path's hot spot).
    """
    columns = [_as_text(data[name]) for name in data.column_names]
    lines = pc.binary_join_element_wise(*columns, "\t") if len(columns) > 1 else columns[0]
    ended = pc.binary_join_element_wise(lines, pa.scalar("", pa.string()), "\n")
    return b"".join(_buffer_bytes(chunk) for chunk in ended.chunks)


def _buffer_bytes(chunk: pa.Array) -> bytes:
    """The characters of a string array without nulls: its data buffer between the first and last offset."""
    width = pa.int64() if pa.types.is_large_string(chunk.type) else pa.int32()
    offsets = pa.Array.from_buffers(width, len(chunk) + 1, [None, chunk.buffers()[1]], offset=chunk.offset)
    start, end = offsets[0].as_py(), offsets[-1].as_py()
    return chunk.buffers()[2].slice(start, end - start).to_pybytes() if end > start else b""
