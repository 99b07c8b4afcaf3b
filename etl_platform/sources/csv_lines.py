"""The bytes a CSV parser reads, with the physical lines they hold.

pyarrow's CSV reader says neither on which line a row starts nor whether the file ended inside
a quoted value, and it skips blank lines without a word. `LineTap` stands between the file and
the parser: it hands the parser UTF-8 (transcoding other encodings, dropping a byte order mark),
counts physical lines (ended by LF, CRLF or a lone CR, as an editor counts them) and notes the
blank ones, keeps the bytes from the first line not yet accounted for so that a read can resume
at any later line (after an unbalanced quote, or with a larger block), and ends the stream with
a marker line: the marker parses as a row of its own, unless a quote is still open, in which case
it lands inside the last value, which shows that the quote never closed.
"""

from __future__ import annotations

import codecs
import io
import itertools
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

BOM = codecs.BOM_UTF8
READ_BYTES = 4 << 20  # as large as the reader's first block, so a read is usually one block, not a join
LF, CR = 10, 13


def end_marker(delimiter: str, quote_char: str | None) -> str:
    """A line no file holds; it holds neither the delimiter nor the quote, so it parses as one value."""
    return "".join(c for c in "\x00etl:end-of-file\x00" if c not in (delimiter, quote_char))


def utf8_blocks(stream: BinaryIO, encoding: str) -> Iterator[bytes]:
    """The stream as UTF-8 blocks without a byte order mark; a trailing CR waits for the next block,
    so that a CRLF is never split and every block's line ends are its own."""
    decoder = None if codecs.lookup(encoding).name == "utf-8" else codecs.getincrementaldecoder(encoding)()
    carry, first = b"", True
    while True:
        raw = stream.read(READ_BYTES)
        data = decoder.decode(raw, final=not raw).encode("utf-8") if decoder else raw
        data = carry + data
        if first and data:
            data, first = data.removeprefix(BOM), False
        if not raw:
            if data:
                yield data
            return
        carry = b"\r" if data.endswith(b"\r") else b""
        if data[: len(data) - len(carry)]:
            yield data[: len(data) - len(carry)]


def line_ends(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(index of the last byte, index of the first byte) of each line terminator in `data`."""
    array = np.frombuffer(data, np.uint8)
    if b"\r" not in data:
        ends = np.flatnonzero(array == LF)
        return ends, ends
    lf, cr = array == LF, array == CR
    lone_cr = cr.copy()
    lone_cr[:-1] &= ~lf[1:]
    ends = np.flatnonzero(lf | lone_cr)
    return ends, ends - (lf[ends] & (ends > 0) & cr[np.maximum(ends - 1, 0)])


@dataclass
class _Block:
    """Bytes read, the line their first byte belongs to, and how many lines end in them."""

    data: bytes
    first_line: int
    line_start: int  # where the line of the first byte starts, relative to this block (0 or less)
    lines_ended: int
    _ends: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def last_line(self) -> int:
        """The line the block's last byte belongs to."""
        return self.first_line + self.lines_ended

    @property
    def ends(self) -> tuple[np.ndarray, np.ndarray]:
        """`line_ends` of the block, found when first asked: only blank lines and resumes need them."""
        if self._ends is None:
            self._ends = line_ends(self.data)
        return self._ends

    def blank_lines(self) -> np.ndarray:
        ends, terminator_starts = self.ends
        line_starts = np.concatenate(([self.line_start], ends[:-1] + 1))
        return self.first_line + np.flatnonzero(terminator_starts == line_starts)

    def last_end(self) -> int:
        """Where the last line terminator in the block ends."""
        return int(self.ends[0][-1]) if b"\r" in self.data else self.data.rindex(b"\n")


class LineTap(io.RawIOBase):
    """A readable stream over `blocks` (see `utf8_blocks`) whose first byte starts physical line `first_line`;
    a line break and `marker` (see `end_marker`) end the stream, unless it is None."""

    def __init__(self, blocks: Iterator[bytes], first_line: int, marker: str | None):
        super().__init__()
        self._blocks = blocks
        self._kept: deque[_Block] = deque()
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._next_line = first_line  # the line the next byte read belongs to
        self._line_start = 0  # offset of that line's start, relative to the next block
        self._marker = b"" if marker is None else b"\n" + marker.encode("utf-8")
        self._ended = False
        self.blank_lines: deque[int] = deque()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        """Exactly `size` bytes unless the stream ends (pyarrow's blocks are as large as it asks)."""
        while (size < 0 or self._pending_bytes < size) and not self._ended:
            block = next(self._blocks, None)
            if block is None:
                self._ended = True
                block = self._marker
            else:
                self._account(block)
            self._pending.append(block)
            self._pending_bytes += len(block)
        out = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        size = len(out) if size < 0 else min(size, len(out))
        self._pending = [out[size:]] if size < len(out) else []
        self._pending_bytes = len(out) - size
        return out[:size] if size < len(out) else out

    def _account(self, data: bytes) -> None:
        """Count a block's lines, note its blank ones, and keep it for a resume."""
        block = _Block(data, self._next_line, self._line_start, 0)
        if b"\r" in data:
            block.lines_ended, may_hold_blank = len(block.ends[0]), True
        else:  # the common case: counted without finding every line end
            lf = np.frombuffer(data, np.uint8) == LF
            block.lines_ended = int(np.count_nonzero(lf))
            may_hold_blank = bool((lf[1:] & lf[:-1]).any()) or (self._line_start == 0 and data.startswith(b"\n"))
        if may_hold_blank:
            self.blank_lines.extend(block.blank_lines().tolist())
        self._kept.append(block)
        if block.lines_ended:
            self._line_start = block.last_end() + 1 - len(data)
        else:
            self._line_start -= len(data)
        self._next_line += block.lines_ended

    def release_before(self, line: int) -> None:
        """Forget bytes of lines before `line`: the reader will not resume before it."""
        while self._kept and self._kept[0].last_line < line:
            self._kept.popleft()
        while self.blank_lines and self.blank_lines[0] < line:
            self.blank_lines.popleft()

    def _start_of(self, line: int) -> tuple[int, int]:
        """(kept block, offset) where `line` starts."""
        for index, block in enumerate(self._kept):
            if block.first_line == line and block.line_start == 0:
                return index, 0
            position = line - 1 - block.first_line
            if 0 <= position < block.lines_ended:
                return index, int(block.ends[0][position]) + 1
        raise ValueError(f"line {line} was not read, or was released")

    def line_text(self, line: int) -> str:
        """The text of a line that was read (without its terminator), for a quarantine record."""
        index, offset = self._start_of(line)
        parts = []
        for block in list(self._kept)[index:]:
            position = line - block.first_line
            if 0 <= position < block.lines_ended:
                parts.append(block.data[offset : int(block.ends[1][position])])
                break
            parts.append(block.data[offset:])
            offset = 0
        return b"".join(parts).decode("utf-8", errors="replace")

    def resume_at(self, line: int) -> Iterator[bytes] | None:
        """The blocks from the start of `line` on: the kept bytes, then the rest of the file (None: no such line)."""
        if self._ended and line > self._next_line:
            return None
        index, offset = self._start_of(line)
        kept = [block.data for block in list(self._kept)[index:]]
        kept[0] = kept[0][offset:]
        self._kept.clear()
        return itertools.chain(filter(None, kept), self._blocks)
