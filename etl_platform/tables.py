"""Helpers for the Arrow chunks every step works on, shared by the transforms and the ML steps.

A chunk carries provenance columns next to its data (etl_platform.sources.base); error messages
list only the data columns. Steps evaluate SQL with DuckDB, so identifiers are quoted for it.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from etl_platform.errors import TransformError
from etl_platform.sources.base import PROVENANCE

# What the DuckDB that evaluates spec authors' expressions may not do. Expressions are parsed and
# checked before they run (etl_platform.spec.expressions); this is the second wall, for a gap in
# the first: no files, network or extensions (table functions that read files fail, and so would
# getenv), no Python objects found by name, and no SET that could undo it.
SANDBOX = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "python_enable_replacements": False,
    "lock_configuration": True,
}


# The aggregate's DuckDB works within this and spills the rest to the load's temporary folder
# (docs/architecture.md, Contracts 1).
SPILLING_MEMORY_LIMIT = "256MB"


def sandboxed_duckdb() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that sees only the tables registered on it."""
    return duckdb.connect(config=SANDBOX)


def spilling_duckdb(folder: Path) -> duckdb.DuckDBPyConnection:
    """A DuckDB that keeps to SPILLING_MEMORY_LIMIT and spills what does not fit to `folder`.

    DuckDB cannot spill with external access disabled, so this one has it: it runs only SQL the
    platform generates from quoted identifiers and fixed templates (the aggregate's grouping),
    never an author's expression; those run in `sandboxed_duckdb`.
    """
    limits = {"enable_external_access": True, "memory_limit": SPILLING_MEMORY_LIMIT, "temp_directory": str(folder)}
    return duckdb.connect(config={**SANDBOX, **limits})


def ident(name: str) -> str:
    """Quote an identifier for DuckDB."""
    return '"' + name.replace('"', '""') + '"'


def data_columns(table: pa.Table) -> list[str]:
    return [n for n in table.column_names if n not in PROVENANCE]


def require_columns(table: pa.Table, columns: list[str], where: str) -> None:
    """Fail with the missing and the available column names."""
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise TransformError(
            f"{where}: column(s) {', '.join(map(repr, missing))} not found; available: {', '.join(data_columns(table))}"
        )
