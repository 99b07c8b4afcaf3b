"""What a pipeline spec may reach: source paths inside the deployment's roots, SQL that only reads.

Whoever writes a pipeline file is not trusted with the machine or the warehouse (docs/security.md).
These checks refuse, when the file is validated, what would reach further: a source path outside
the landing zone and the allowed roots, and SQL (a `CustomQuery` check's `sql:`, a SQL source's
`query:`) that is anything but one SELECT. The run repeats both in depth: files are judged again
when listed (etl_platform.stores.roots), and the SQL runs read-only with a statement timeout
(etl_platform.warehouse.base, `Warehouse.read_only`).
"""

from __future__ import annotations

from typing import Protocol

import sqlglot
import sqlglot.errors
from pydantic import ValidationInfo
from sqlglot import expressions as exp

# Nodes that write, change the schema or end the transaction, wherever they sit in the tree
# (a data-modifying CTE, SELECT ... INTO).
_WRITES = (
    exp.DML,
    exp.Into,
    exp.Create,
    exp.Drop,
    exp.Alter,
    exp.Command,
    exp.Commit,
    exp.Rollback,
    exp.Transaction,
    exp.Pragma,
    exp.Set,
    exp.Copy,
)


class PathRoots(Protocol):
    """Where source paths may point (etl_platform.stores.AllowedRoots): the spec judges paths without importing stores."""

    def refusal(self, path: str) -> str | None: ...


def _not_a_table(node: exp.Table) -> str | None:
    """What a FROM item reads if not a table: a table function (read_csv, glob) or a file name that
    DuckDB would scan (`FROM '/etc/passwd'`, `FROM "data.csv"`)."""
    if not isinstance(node.this, exp.Identifier):
        return node.this.sql(dialect="duckdb")
    if any(mark in node.name for mark in "/\\.:"):
        return repr(node.name)
    return None


def single_select(sql: str, field: str) -> str:
    """`sql` if it parses as exactly one SELECT (a set operation of SELECTs included) that writes
    nothing and reads only tables (no table function or file name in FROM).

    `{dataset}` (a check's target table) is read as a table name. Parsed with sqlglot's DuckDB
    dialect, which reads the PostgreSQL and SQLite SQL that checks and sources are written in.
    """
    text = sql.replace("{dataset}", "_etl_dataset")
    try:
        statements = [s for s in sqlglot.parse(text, read="duckdb") if s is not None]
    except sqlglot.errors.ParseError as exc:
        raise ValueError(f"`{field}` does not parse as SQL: {exc.errors[0]['description']}") from None
    if len(statements) != 1:
        raise ValueError(f"`{field}` must be one SELECT statement, found {len(statements)} statements")
    statement = statements[0]
    writes = sorted({type(node).__name__.upper() for node in statement.walk() if isinstance(node, _WRITES)})
    if not isinstance(statement, exp.Query) or writes:
        found = ", ".join(writes) or type(statement).__name__.upper()
        raise ValueError(f"`{field}` must be one SELECT that only reads; found {found}")
    outside = [found for table in statement.find_all(exp.Table) if (found := _not_a_table(table))]
    if outside:
        raise ValueError(f"`{field}` may read tables only, not {', '.join(outside)}")
    return sql


def inside_allowed_roots(path: str | None, info: ValidationInfo) -> str | None:
    """`path` if it lies inside the deployment's roots, when the loader was given them.

    The roots (an etl_platform.stores.AllowedRoots: the landing zone and ETL_ALLOWED_ROOTS) come
    in the validation context as `allowed_roots`; `etl validate` and the code location's load
    pass them. Without them (a spec built in a test) the path is judged at run time only.
    """
    roots: PathRoots | None = (info.context or {}).get("allowed_roots")
    if path is not None and roots is not None:
        reason = roots.refusal(path)
        if reason is not None:
            raise ValueError(reason)
    return path
