"""User-written SQL expressions (`filter`, `derive`, `having`): parsed, checked, and regenerated, never pasted.

Pasting an author's text into a query let it close the parenthesis and append a query
(`x > 0) UNION ALL SELECT ... --`) or call a table function in a scalar subquery that reads files
or the process environment. So an expression is parsed into a tree (sqlglot, DuckDB dialect) that
must be one scalar expression built only from the node types and functions allowed below, over
unqualified column names; the SQL that runs is generated from that tree. DuckDB's own parser must
also read the text as one expression, so syntax that sqlglot would read leniently (`x > > 0`) is
an error rather than a different expression. Anything else is refused while the spec validates,
so `etl validate` reports it with file and line; a run parses each expression once.

The allowed functions are the documented ones (docs/pipeline-spec.md, "Expressions: what they
may use"): arithmetic, text, null handling, dates and casts. Nothing that reads files, settings,
the environment or other tables, nothing that aggregates or looks at other rows.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

import duckdb
import sqlglot
import sqlglot.errors
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

DIALECT = "duckdb"
DOCS = 'see "Expressions: what they may use" in docs/pipeline-spec.md'

# Each allowed function as its author writes it, with an example; the example's parsed node is
# what the allow-list admits, so the list cannot drift from what sqlglot produces.
ALLOWED_FUNCTIONS: dict[str, str] = {
    # numbers
    "abs": "abs(x)",
    "ceil": "ceil(x)",
    "floor": "floor(x)",
    "round": "round(x, 2)",
    "trunc": "trunc(x)",
    "sqrt": "sqrt(x)",
    "exp": "exp(x)",
    "ln": "ln(x)",
    "log": "log(x)",
    "log10": "log10(x)",
    "power": "power(x, 2)",
    "pow": "pow(x, 2)",
    "sign": "sign(x)",
    "greatest": "greatest(x, y)",
    "least": "least(x, y)",
    "mod": "mod(x, 2)",
    "isnan": "isnan(x)",
    "isinf": "isinf(x)",
    # text
    "lower": "lower(name)",
    "upper": "upper(name)",
    "length": "length(name)",
    "trim": "trim(name)",
    "ltrim": "ltrim(name)",
    "rtrim": "rtrim(name)",
    "substr": "substr(name, 1, 3)",
    "substring": "substring(name, 1, 3)",
    "left": "left(name, 2)",
    "right": "right(name, 2)",
    "lpad": "lpad(code, 5, '0')",
    "rpad": "rpad(code, 5, ' ')",
    "replace": "replace(code, '-', '')",
    "concat": "concat(name, '-', code)",
    "concat_ws": "concat_ws('-', name, code)",
    "strpos": "strpos(name, 'a')",
    "contains": "contains(name, 'a')",
    "starts_with": "starts_with(code, 'DE')",
    "ends_with": "ends_with(name, '.com')",
    "split_part": "split_part(name, ' ', 1)",
    "reverse": "reverse(name)",
    "regexp_matches": "regexp_matches(code, '^[A-Z]{2}')",
    "regexp_replace": "regexp_replace(code, '[^0-9]', '', 'g')",
    "regexp_extract": "regexp_extract(code, '([0-9]+)', 1)",
    "strip_accents": "strip_accents(name)",
    "levenshtein": "levenshtein(name, code)",
    "md5": "md5(name)",
    "sha256": "sha256(name)",
    # nulls and conditions
    "coalesce": "coalesce(name, code)",
    "ifnull": "ifnull(name, '')",
    "nullif": "nullif(code, '')",
    "if": "if(x > 0, 'credit', 'debit')",
    # dates and times
    "current_date": "current_date",
    "current_timestamp": "current_timestamp",
    "now": "now()",
    "date_trunc": "date_trunc('month', created_at)",
    "date_part": "date_part('year', created_at)",
    "extract": "extract(year FROM created_at)",
    "year": "year(created_at)",
    "quarter": "quarter(created_at)",
    "month": "month(created_at)",
    "week": "week(created_at)",
    "day": "day(created_at)",
    "dayofweek": "dayofweek(created_at)",
    "dayname": "dayname(created_at)",
    "monthname": "monthname(created_at)",
    "hour": "hour(created_at)",
    "minute": "minute(created_at)",
    "second": "second(created_at)",
    "last_day": "last_day(created_at)",
    "date_diff": "date_diff('day', created_at, shipped_at)",
    "datediff": "datediff('day', created_at, shipped_at)",
    "date_add": "date_add(created_at, INTERVAL 1 DAY)",
    "age": "age(shipped_at, created_at)",
    "make_date": "make_date(2024, 1, 31)",
    "strftime": "strftime(created_at, '%Y-%m')",
    "strptime": "strptime(date_text, '%d/%m/%Y')",
    "try_strptime": "try_strptime(date_text, '%d/%m/%Y')",
    "epoch": "epoch(created_at)",
    "to_timestamp": "to_timestamp(x)",
    # types
    "cast": "cast(count_text AS INTEGER)",
    "try_cast": "try_cast(count_text AS INTEGER)",
    "typeof": "typeof(x)",
}

# Operators, literals and the parts of the allowed functions' syntax (types, interval units).
_STRUCTURE: tuple[type[exp.Expression], ...] = (
    exp.Column,
    exp.Identifier,
    exp.Literal,
    exp.Boolean,
    exp.Null,
    exp.Paren,
    exp.Neg,
    exp.Not,
    exp.And,
    exp.Or,
    exp.Add,
    exp.Sub,
    exp.Mul,
    exp.Div,
    exp.IntDiv,
    exp.Mod,
    exp.Pow,
    exp.EQ,
    exp.NEQ,
    exp.GT,
    exp.GTE,
    exp.LT,
    exp.LTE,
    exp.NullSafeEQ,
    exp.NullSafeNEQ,
    exp.Is,
    exp.In,
    exp.Between,
    exp.Like,
    exp.ILike,
    exp.Case,
    exp.If,
    exp.DPipe,
    exp.Interval,
    exp.Var,
    exp.DataType,
    exp.DataTypeParam,
)


def _function_of(node: exp.Expression) -> str:
    return node.name.lower() if isinstance(node, exp.Anonymous) else node.sql_name().lower()


def _allowed_nodes() -> tuple[frozenset[type[exp.Expression]], frozenset[str]]:
    """The node types the allowed functions parse to, and the names of those sqlglot does not model."""
    types: set[type[exp.Expression]] = set()
    anonymous: set[str] = set()
    for name, example in ALLOWED_FUNCTIONS.items():
        node = sqlglot.parse_one(example, read=DIALECT, into=exp.Condition)
        if isinstance(node, exp.Anonymous):
            anonymous.add(name)
        else:
            types.add(type(node))
    return frozenset(types), frozenset(anonymous)


_KEYWORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FUNCTION_TYPES, _ANONYMOUS_FUNCTIONS = _allowed_nodes()
_ALLOWED_TYPES = frozenset(_STRUCTURE) | _FUNCTION_TYPES


@dataclass(frozen=True)
class CheckedExpression:
    """A checked expression: the DuckDB SQL generated from its tree, and the columns it reads."""

    sql: str
    columns: tuple[str, ...]

    def unknown_columns(self, available: Iterable[str]) -> list[str]:
        """The columns it reads that `available` lacks, compared as DuckDB binds names: case-insensitively."""
        known = {name.lower() for name in available}
        return [column for column in self.columns if column.lower() not in known]


def _refusal(node: exp.Expression) -> str | None:
    """Why this node may not appear in an expression, or None when it may."""
    if type(node) is exp.Column:
        return None if not node.table else f"write the column name alone: `{node.name}`, not `{node.sql(DIALECT)}`"
    if isinstance(node, exp.Var) and not _KEYWORD.fullmatch(node.name):  # written out verbatim
        return f"`{node.name}` is not a keyword such as DAY or YEAR"
    if isinstance(node, exp.DataType) and node.this == exp.DataType.Type.USERDEFINED:
        return f"unknown type `{node.sql(DIALECT)}`; use a DuckDB type such as INTEGER, DOUBLE, VARCHAR, DATE"
    if type(node) in _ALLOWED_TYPES:  # exactly these classes: a subclass may mean something else
        return None
    if type(node) is exp.Anonymous and node.name.lower() in _ANONYMOUS_FUNCTIONS:
        return None
    if isinstance(node, exp.Query | exp.Subquery | exp.Table):
        return "a query or subquery is not allowed; an expression computes each row from its own columns"
    if isinstance(node, exp.AggFunc | exp.Window):
        return "aggregates and window functions look at other rows; use the `aggregate` step for totals"
    if isinstance(node, exp.Placeholder | exp.Parameter):
        return "parameters are not allowed"
    if isinstance(node, exp.Func):
        return f"function {_function_of(node)}() is not allowed; {DOCS}"
    return f"`{node.sql(DIALECT)}` ({type(node).__name__}) is not allowed in an expression; {DOCS}"


def _syntax_error(text: str) -> str | None:
    """DuckDB's own verdict: is the text one expression in the dialect it is written in?"""
    try:
        duckdb.SQLExpression(text)
    except duckdb.Error as exc:
        return str(exc).splitlines()[0].removeprefix("Parser Error: ").removeprefix("Invalid Input Error: ")
    return None


def _parse(text: str) -> exp.Expression:
    problem = _syntax_error(text)
    if problem is None:
        try:
            if any(token.comments for token in Dialect.get_or_raise(DIALECT).tokenize(text)):
                raise ValueError(f"comments are not allowed in an expression: {text!r}; write notes as YAML `#` comments")
            return sqlglot.parse_one(text, read=DIALECT, into=exp.Condition)
        except sqlglot.errors.ParseError as exc:
            first = exc.errors[0] if exc.errors else {}
            problem = f"{first.get('description', exc)} at `{first.get('highlight', '')}`"
        except sqlglot.errors.SqlglotError as exc:
            problem = str(exc)
    raise ValueError(f"not a valid SQL expression: {text!r} ({problem}); write one expression such as `amount > 0`")


def _check(tree: exp.Expression, text: str) -> None:
    for node in tree.walk():
        problem = _refusal(node)
        if problem is not None:
            raise ValueError(f"{text!r}: {problem}")


@functools.lru_cache(maxsize=1024)
def parse_expression(text: str) -> CheckedExpression:
    """Check one user-written expression and generate the SQL that evaluates it (ValueError says why not).

    The generated SQL is parsed and checked again and must read back unchanged: a part that is
    written out verbatim (a keyword, a type name) cannot smuggle structure into the SQL that runs.
    """
    tree = _parse(text)
    _check(tree, text)
    sql = tree.sql(dialect=DIALECT, identify=True, comments=False)
    try:
        again = _parse(sql)
    except ValueError:
        again = None
    if again is None or again.sql(dialect=DIALECT, identify=True) != sql:
        raise ValueError(f"{text!r} does not read back as the same expression once written as SQL (`{sql}`); simplify it")
    _check(again, text)
    columns = tuple(dict.fromkeys(column.name for column in tree.find_all(exp.Column, bfs=False)))
    return CheckedExpression(sql, columns)


def sql_expression(text: str) -> str:
    """The pydantic validator of an expression field: the text stays as written, once it is known safe."""
    parse_expression(text)
    return text
