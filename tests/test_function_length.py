"""No function in etl_platform/ is longer than 80 lines: a function you can read at once.

Issue 12 found the load in one 233-line function with five nested closures; this keeps the
split from growing back. Nested functions count inside their parent as well as on their own.
"""

from __future__ import annotations

import ast
from pathlib import Path

MAX_LINES = 80
PACKAGE = Path(__file__).resolve().parent.parent / "etl_platform"


def function_lengths(package: Path) -> list[tuple[int, str]]:
    """(lines, "path:line name") for every function and method under `package`, longest first."""
    lengths = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                start = min([node.lineno, *(decorator.lineno for decorator in node.decorator_list)])
                where = f"{path.relative_to(package.parent)}:{node.lineno} {node.name}"
                lengths.append((node.end_lineno - start + 1, where))
    return sorted(lengths, reverse=True)


def test_the_measure_counts_a_function_from_decorator_to_last_line(tmp_path: Path) -> None:
    (tmp_path / "module.py").write_text("@decorated\ndef short():\n    return 1\n\n\ndef long():\n" + "    x = 1\n" * 81)
    assert function_lengths(tmp_path) == [(82, f"{tmp_path.name}/module.py:6 long"), (3, f"{tmp_path.name}/module.py:2 short")]


def test_no_function_in_etl_platform_is_longer_than_80_lines() -> None:
    too_long = [f"{lines} lines: {where}" for lines, where in function_lengths(PACKAGE) if lines > MAX_LINES]
    assert not too_long, "split these functions (longest first):\n" + "\n".join(too_long)
