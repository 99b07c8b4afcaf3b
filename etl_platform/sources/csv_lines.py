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
READ_BYTES = 1 << 20
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


@dataclass
class _Block:
    """Bytes read, the line their first byte belongs to, and where each line they end ends."""

    data: bytes
    first_line: int
    ends: np.ndarray  # index of the last byte of each line terminator in `data`
    terminator_starts: np.ndarray
    starts_line: bool  # its first byte is the first of a line

    @property
    def last_line(self) -> int:
        """The line the block's last byte belongs to."""
        return self.first_line + len(self.ends)


class LineTap(io.RawIOBase):
    """A readable stream over `blocks` (see `utf8_blocks`) whose first byte starts physical line `first_line`;
    a line break and `marker` (see `end_marker`) end the stream, unless it is None."""

    def __init__(self, blocks: Iterator[bytes], first_line: int, marker: str | None):
        super().__init__()
        self._blocks = blocks
        self._kept: deque[_Block] = deque()
        self._pending = bytearray()
        self._next_line = first_line  # the line the next byte read belongs to
        self._line_start = 0  # offset of that line's start, relative to the next block
        self._marker = b"" if marker is None else b"\n" + marker.encode("utf-8")
        self._ended = False
        self.blank_lines: deque[int] = deque()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        """Exactly `size` bytes unless the stream ends (pyarrow's blocks are as large as it asks)."""
        while (size < 0 or len(self._pending) < size) and not self._ended:
            block = next(self._blocks, None)
            if block is None:
                self._ended = True
                self._pending += self._marker
            else:
                self._account(block)
                self._pending += block
        size = len(self._pending) if size < 0 else size
        out = bytes(self._pending[:size])
        del self._pending[:size]
        return out

    def readinto(self, buffer) -> int:  # io.RawIOBase's read() of other callers goes through here
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _account(self, data: bytes) -> None:
        """Line ends and blank lines of a block, and keep it for a resume."""
        array = np.frombuffer(data, np.uint8)
        lf, cr = array == LF, array == CR
        lone_cr = cr.copy()
        lone_cr[:-1] &= ~lf[1:]
        ends = np.flatnonzero(lf | lone_cr)
        crlf = lf[ends] & (ends > 0) & cr[np.maximum(ends - 1, 0)]
        terminator_starts = ends - crlf
        line_starts = np.concatenate(([self._line_start], ends[:-1] + 1))
        blank = np.flatnonzero(terminator_starts == line_starts)
        self.blank_lines.extend((blank + self._next_line).tolist())
        self._kept.append(_Block(data, self._next_line, ends, terminator_starts, self._line_start == 0))
        if len(ends):
            self._line_start = int(ends[-1]) + 1 - len(data)
        else:
            self._line_start -= len(data)
        self._next_line += len(ends)

    def release_before(self, line: int) -> None:
        """Forget bytes of lines before `line`: the reader will not resume before it."""
        while self._kept and self._kept[0].last_line < line:
            self._kept.popleft()
        while self.blank_lines and self.blank_lines[0] < line:
            self.blank_lines.popleft()

    def _start_of(self, line: int) -> tuple[int, int]:
        """(kept block, offset) where `line` starts."""
        for index, block in enumerate(self._kept):
            if block.first_line == line and block.starts_line:
                return index, 0
            position = line - 1 - block.first_line
            if 0 <= position < len(block.ends):
                return index, int(block.ends[position]) + 1
        raise ValueError(f"line {line} was not read, or was released")

    def line_text(self, line: int) -> str:
        """The text of a line that was read (without its terminator), for a quarantine record."""
        index, offset = self._start_of(line)
        parts = []
        for block in list(self._kept)[index:]:
            position = line - block.first_line
            if 0 <= position < len(block.ends):
                parts.append(block.data[offset : int(block.terminator_starts[position])])
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
