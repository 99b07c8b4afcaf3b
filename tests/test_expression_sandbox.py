"""What a spec author's expression can reach: the step's columns, the allowed functions, nothing else.

Expressions are parsed and regenerated (etl_platform.spec.expressions) and evaluated in a DuckDB
without files, network or settings (etl_platform.tables.sandboxed_duckdb). A canary file and the
process environment (/proc/self/environ, as an attacker would read it) must never reach a table.
"""

from __future__ import annotations

import os
import re
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from etl_platform.errors import SpecError, TransformError
from etl_platform.sources.base import with_provenance
from etl_platform.spec.expressions import ALLOWED_FUNCTIONS, parse_expression
from etl_platform.transforms import TransformChain, TransformContext
from etl_platform.transforms.base import run_sql
from tests.conftest import pipeline

CANARY = f"canary-{uuid.uuid4().hex}"
CANARY_FILE = Path(tempfile.gettempdir()) / f"etl-expression-canary-{os.getpid()}.txt"
ENVIRON = "/proc/self/environ"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "pipeline-spec.md"


@pytest.fixture(scope="module", autouse=True)
def canary_file() -> Iterator[Path]:
    CANARY_FILE.write_text(f"{CANARY}\n")
    yield CANARY_FILE
    CANARY_FILE.unlink()


def expression_id(expression: str) -> str:
    """A test id that is the same in every pytest-xdist worker (the canary file's name holds the pid)."""
    return expression.replace(str(CANARY_FILE), "<canary file>")


def chunk() -> pa.Table:
    table = pa.table({"amount": [10.0, -2.5, None], "qty": [1, 2, 3], "name": ["Ann", "it's", None]})
    return with_provenance(table, "input.csv", pa.array([2, 3, 4], pa.int64()))


def leaked(text: str) -> bool:
    """The canary file's content or the process environment (PATH=... from /proc/self/environ)."""
    return CANARY in text or "PATH=" in text


def run_steps(transforms: list[dict]) -> pa.Table:
    spec = pipeline(transforms=transforms)
    context = TransformContext(spec.origin, lambda dataset, columns: None)
    try:
        return TransformChain(spec.transforms, context).apply(chunk()).table
    finally:
        context.close()


@pytest.mark.parametrize(
    "expression",
    [
        f"(SELECT content FROM read_text('{ENVIRON}'))",
        f"(SELECT content FROM read_text('{CANARY_FILE}'))",
        f"(SELECT string_agg(column0, ',') FROM read_csv('{CANARY_FILE}', header = false))",
        "(SELECT string_agg(file, ',') FROM glob('/etc/*'))",
        "getenv('PATH')",
        "current_setting('temp_directory')",
        f"name || (SELECT content FROM read_blob('{CANARY_FILE}'))",
    ],
    ids=expression_id,
)
def test_a_derive_cannot_read_files_or_the_environment(expression: str) -> None:
    """Issue 22 item 1: a scalar subquery over a table function published the file or environment."""
    with pytest.raises(SpecError, match=r"transforms\[0\]\.derive\.leak: .*(subquery|function \w+\(\) is not allowed)"):
        pipeline(transforms=[{"derive": {"leak": expression}}])


@pytest.mark.parametrize(
    "expression",
    [
        "amount > 0) UNION ALL SELECT * FROM chunk --",
        f"amount > 0) UNION ALL SELECT * REPLACE ((SELECT content FROM read_text('{CANARY_FILE}')) AS name) FROM chunk --",
        "amount > 0) UNION ALL (SELECT * FROM chunk",
        "amount > 0 UNION ALL SELECT 1",
        "amount > 0; DROP TABLE chunk",
        "amount > 0 OR EXISTS (SELECT 1)",
        "chunk.amount > 0",
    ],
    ids=expression_id,
)
def test_a_filter_cannot_close_itself_and_add_rows(expression: str) -> None:
    """Issue 22 item 2: a filter closed the parenthesis, appended a UNION and commented out the rest."""
    with pytest.raises(SpecError, match=r"transforms\[0\]\.filter: "):
        pipeline(transforms=[{"filter": expression}])


def test_the_sql_that_runs_is_generated_from_the_parsed_tree() -> None:
    checked = parse_expression("Amount*1.19 > 10 AND name = 'it''s'")
    assert checked.sql == "\"Amount\" * 1.19 > 10 AND \"name\" = 'it''s'"
    assert checked.columns == ("Amount", "name")
    with pytest.raises(ValueError, match="comments are not allowed"):
        parse_expression("amount /* net */ * 1.19")


def test_the_duckdb_that_evaluates_expressions_cannot_reach_files_settings_or_extensions() -> None:
    """Defence in depth: SQL that a parser gap let through still cannot leave the registered chunk."""
    context = TransformContext("p.yaml", lambda dataset, columns: None)
    try:
        for sql in [
            f"SELECT *, (SELECT content FROM read_text('{CANARY_FILE}')) AS leak FROM chunk",
            f"SELECT *, (SELECT content FROM read_text('{ENVIRON}')) AS leak FROM chunk",
            f"SELECT * FROM chunk UNION ALL BY NAME SELECT * FROM read_csv('{CANARY_FILE}')",
        ]:
            with pytest.raises(TransformError) as caught:
                run_sql(context, chunk(), sql, "p.yaml: transforms[0]")
            assert not leaked(str(caught.value))
        for statement in ["SET enable_external_access = true", "LOAD httpfs", f"ATTACH '{CANARY_FILE}.db'"]:
            with pytest.raises(duckdb.Error, match=r"configuration|disabled"):
                context.cursor().execute(statement)
        settings = "SELECT current_setting('enable_external_access'), current_setting('lock_configuration')"
        assert context.cursor().sql(settings).fetchall() == [(False, True)]
    finally:
        context.close()


def test_an_expression_reading_a_missing_column_names_it_and_the_available_ones() -> None:
    with pytest.raises(TransformError, match=r"reads 'amout', not a column here; available: amount, qty, name"):
        run_steps([{"filter": "amout > 0"}])
    aggregate = {"group_by": ["name"], "measures": {"revenue": {"sum": "amount"}}, "having": "revenu > 1"}
    with pytest.raises(SpecError, match=r"having reads 'revenu'; it may use the output columns \['name', 'revenue'\]"):
        pipeline(transforms=[{"aggregate": aggregate}])


def test_every_allowed_function_evaluates_in_the_sandbox_and_is_documented() -> None:
    row = pa.table(
        {
            "x": [2.5],
            "y": [4.0],
            "name": ["Zoë Smith"],
            "code": ["DE-0042"],
            "date_text": ["01/02/2024"],
            "count_text": ["42"],
            "created_at": pa.array([1_700_000_000_000_000], pa.timestamp("us")),
            "shipped_at": pa.array([1_710_000_000_000_000], pa.timestamp("us")),
        }
    )
    context = TransformContext("p.yaml", lambda dataset, columns: None)
    try:
        for name, example in ALLOWED_FUNCTIONS.items():
            run_sql(context, row, f"SELECT {parse_expression(example).sql} AS value FROM chunk", f"example of {name}")
    finally:
        context.close()
    documented = re.split(r"\n#{2,3} ", DOCS.read_text().split("### Expressions: what they may use")[1])[0]
    assert [n for n in ALLOWED_FUNCTIONS if f"`{n}`" not in documented] == []
    named = set(re.findall(r"`([a-z_0-9]+)`", documented.split("Functions:")[1]))
    assert named <= set(ALLOWED_FUNCTIONS)


# Column arithmetic, and the fragments a hostile author would splice into it.
COLUMNS = st.sampled_from(["amount", "qty", "name", "Amount", '"qty"'])
LITERALS = st.sampled_from(["1", "2.5", "0", "'x'", "'it''s'", "NULL", "true", "''"])
HOSTILE = st.sampled_from(
    [
        ")",
        "(",
        " -- ",
        "/*",
        "*/",
        ";",
        "'",
        '"',
        "$$",
        " UNION ALL SELECT * FROM chunk",
        " EXCEPT SELECT * FROM chunk WHERE qty = 1",
        ") UNION ALL SELECT * FROM chunk --",
        f"(SELECT content FROM read_text('{CANARY_FILE}'))",
        f"(SELECT content FROM read_text('{ENVIRON}'))",
        f"(SELECT string_agg(file, ',') FROM glob('{CANARY_FILE.parent}/*'))",
        f"read_text('{CANARY_FILE}')",
        "getenv('PATH')",
        "current_setting('home_directory')",
        "EXISTS (SELECT 1)",
        "amount IN (SELECT qty FROM chunk)",
        "chunk.amount",
        f"'{CANARY_FILE}'",
        "'; SELECT 1; --",
        "count(*)",
        "sum(amount) OVER ()",
        'EXTRACT("year) FROM chunk) + (SELECT 1" FROM amount)',
        'amount::"int) + (SELECT 1"',
        'CAST(qty AS "a b")',
        "E'\\x27'",
        "$1",
        "\n",
    ]
)
OPERATORS = st.sampled_from(["+", "-", "*", "/", "||", ">", "=", "<>", "AND", "OR", "IS NOT"])
FUNCTIONS = st.sampled_from(["abs", "lower", "length", "coalesce", "round", "read_text", "getenv", "query"])


def _combine(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, OPERATORS, inner).map(" ".join),
        inner.map(lambda e: f"({e})"),
        st.tuples(FUNCTIONS, inner).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(inner, HOSTILE).map("".join),
        st.tuples(HOSTILE, inner).map("".join),
    )


EXPRESSIONS = st.recursive(st.one_of(COLUMNS, LITERALS, HOSTILE), _combine, max_leaves=6)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expression=EXPRESSIONS, kind=st.sampled_from(["filter", "derive"]))
def test_generated_expressions_are_refused_or_touch_only_the_steps_columns(expression: str, kind: str) -> None:
    step = {"filter": expression} if kind == "filter" else {"derive": {"out": expression}}
    try:
        table = run_steps([step])
    except (SpecError, TransformError) as refused:  # at validation, or deterministically on the chunk
        event(f"refused by {type(refused).__name__}")
        assert not leaked(str(refused))
        return
    event("evaluated")
    data = table.drop_columns(["_etl_source_file", "_etl_source_line"])
    original = chunk().drop_columns(["_etl_source_file", "_etl_source_line"]).to_pylist()
    if kind == "filter":  # some of the chunk's rows, none twice, none new
        assert not Counter(map(repr, data.to_pylist())) - Counter(map(repr, original))
    else:
        assert data.column_names == ["amount", "qty", "name", "out"] and len(data) == len(original)
    assert not leaked(repr(table.to_pylist()))


def test_sql_that_would_not_read_back_as_the_checked_expression_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The second parse catches a verbatim part that smuggles structure, even if the first check missed it."""
    import etl_platform.spec.expressions as expressions

    smuggled = 'EXTRACT("year) FROM x) + (SELECT 1" FROM amount)'
    with pytest.raises(ValueError, match="is not a keyword such as DAY or YEAR"):
        parse_expression(smuggled)
    monkeypatch.setattr(expressions, "_KEYWORD", re.compile(r".*", re.DOTALL))  # as if the keyword check had a gap
    with pytest.raises(ValueError, match=r"does not read back as the same expression once written as SQL"):
        expressions.parse_expression.__wrapped__(smuggled)
