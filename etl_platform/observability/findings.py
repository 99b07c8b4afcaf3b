"""One line of `etl doctor`: what was checked, whether it holds, what was seen and how to fix it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from etl_platform.errors import one_line, redact


@dataclass(frozen=True)
class Finding:
    """A check's verdict. `fix` is said only when it fails: the one thing the operator should do."""

    check: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        """`PASS check: detail` or `FAIL check: detail -> fix`, with any URL's password masked."""
        verdict = "PASS" if self.ok else "FAIL"
        text = f"{verdict} {self.check}: {self.detail}" + ("" if self.ok or not self.fix else f" -> fix: {self.fix}")
        return redact(text)


def probe(check: str, action: Callable[[], str], fix: str) -> Finding:
    """Run `action` (it returns what it saw); any exception is a failed finding with its message on one line."""
    try:
        return Finding(check, True, action())
    except Exception as error:  # a doctor reports every failure, whatever raised it
        return Finding(check, False, one_line(error) or type(error).__name__, fix)
