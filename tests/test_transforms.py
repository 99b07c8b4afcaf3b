"""Each transform on real chunks: what goes on, what is rejected (with why), what is filtered."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from etl_platform.engine.runner import run_pipeline
from etl_platform.errors import TransformError
from etl_platform.sources.base import with_provenance
from etl_platform.transforms import TransformChain, TransformContext
from tests.conftest import environment_for, pipeline, rows, write_csv


def chunk(**columns) -> pa.Table:
    table = pa.table(columns)
    return with_provenance(table, "input.csv", pa.array(range(2, 2 + len(table)), pa.int64()))


def apply(transforms: list[dict], table: pa.Table, secrets: dict[str, str] | None = None):
    spec = pipeline(transforms=transforms)
    return TransformChain(
        spec.transforms, TransformContext(spec.origin, lambda dataset, columns: None, secrets=secrets or {})
    ).apply(table)


def data(output) -> list[dict]:
    return output.table.drop_columns(["_etl_source_file", "_etl_source_line"]).to_pylist()


def test_cast_quarantines_values_that_do_not_fit_and_keeps_going() -> None:
    out = apply(
        [{"cast": {"n": "int", "amount": "float", "day": "date", "at": {"type": "timestamp", "format": "%d/%m/%Y %H:%M"}}}],
        chunk(
            n=["1", "x", "3"],
            amount=["1.5", "2", "abc"],
            day=["2024-01-02", "2024-01-03", "2024-01-04"],
            at=["02/01/2024 10:30", "03/01/2024 11:00", "04/01/2024 12:00"],
        ),
    )
    assert data(out) == [
        {
            "n": 1,
            "amount": 1.5,
            "day": pa.scalar(19724, pa.date32()).as_py(),
            "at": pa.scalar(1704191400000000, pa.timestamp("us")).as_py(),
        }
    ]
    ((stage, rejected),) = out.rejected
    assert stage == "transforms[0].cast"
    assert rejected.columns == ["n", "amount"]
    assert rejected.values == ["x", "abc"]
    assert rejected.reasons == ["cannot cast 'x' in 'n' to int", "cannot cast 'abc' in 'amount' to float"]
    assert rejected.rows["_etl_source_line"].to_pylist() == [3, 4]


def test_decimal_and_bool_casts() -> None:
    out = apply([{"cast": {"price": "decimal(10,2)", "active": "bool"}}], chunk(price=["12.50", "3"], active=["true", "false"]))
    assert [str(r["price"]) for r in data(out)] == ["12.50", "3.00"]
    assert [r["active"] for r in data(out)] == [True, False]


def test_filter_counts_filtered_rows_and_null_results() -> None:
    out = apply([{"cast": {"a": "int"}}, {"filter": "a > 1"}], chunk(a=["1", "2", None, "5"]))
    assert [r["a"] for r in data(out)] == [2, 5]
    assert out.filtered == 2


def test_derive_adds_and_replaces_columns() -> None:
    out = apply([{"cast": {"a": "int"}}, {"derive": {"double": "a * 2", "a": "a + 1"}}], chunk(a=["1", "2"]))
    assert data(out) == [{"a": 2, "double": 2}, {"a": 3, "double": 4}]


def test_select_rename_and_missing_column_error() -> None:
    out = apply([{"rename": {"a": "alpha"}}, {"select": ["alpha"]}], chunk(a=["1"], b=["2"]))
    assert data(out) == [{"alpha": "1"}]
    with pytest.raises(TransformError, match=r"transforms\[0\] \(select\): column\(s\) 'zzz' not found; available: a, b"):
        apply([{"select": ["zzz"]}], chunk(a=["1"], b=["2"]))


def test_null_handling_drop_and_fill() -> None:
    out = apply(
        [{"drop_nulls": ["a"]}, {"cast": {"b": "int"}}, {"fill_nulls": {"b": 0, "c": "unknown"}}],
        chunk(a=["1", None, "3"], b=["5", "6", None], c=[None, "x", None]),
    )
    assert data(out) == [{"a": "1", "b": 5, "c": "unknown"}, {"a": "3", "b": 0, "c": "unknown"}]
    assert out.filtered == 1


def test_normalize_strings() -> None:
    out = apply(
        [{"normalize": {"name": ["trim", "collapse_whitespace", "lower", "strip_accents"]}}], chunk(name=["  José   DA  Silva "])
    )
    assert data(out) == [{"name": "jose da silva"}]


def test_mask_salted_sha256_and_redaction() -> None:
    out = apply(
        [{"mask": {"email": "sha256", "phone": "redact"}}],
        chunk(email=["a@x.com", None], phone=["123", None]),
        secrets={"ETL_PII_SALT": "pepper"},
    )
    import hashlib

    assert data(out) == [
        {"email": hashlib.sha256(b"peppera@x.com").hexdigest(), "phone": "[REDACTED]"},
        {"email": None, "phone": None},
    ]
    with pytest.raises(TransformError, match="secret ETL_PII_SALT is not set; export ETL_PII_SALT=<value>"):
        apply([{"mask": {"email": "sha256"}}], chunk(email=["a@x.com"]), secrets={})


def test_lookup_enriches_from_a_published_dataset(warehouse_url: str, landing: Path) -> None:
    environment = environment_for(warehouse_url, landing)
    write_csv(landing, "products.csv", "id,category\n1,books\n2,toys\n")
    products = pipeline(
        id="products",
        source={"type": "csv", "path": "products.csv"},
        transforms=[{"cast": {"id": "int"}}],
        destination={"dataset": "analytics.products", "write": "replace"},
    )
    run_pipeline(products, environment)
    write_csv(landing, "orders.csv", "order_id,product_id\n10,2\n11,1\n12,9\n")
    orders = pipeline(
        id="orders",
        source={"type": "csv", "path": "orders.csv"},
        transforms=[
            {"cast": {"order_id": "int", "product_id": "int"}},
            {
                "lookup": {
                    "dataset": "analytics.products",
                    "on": {"product_id": "id"},
                    "columns": {"category": "product_category"},
                }
            },
        ],
        destination={"dataset": "analytics.orders", "write": "replace"},
    )
    run_pipeline(orders, environment)
    assert rows(warehouse_url, "SELECT * FROM analytics.orders ORDER BY order_id") == [
        {"order_id": 10, "product_id": 2, "product_category": "toys"},
        {"order_id": 11, "product_id": 1, "product_category": "books"},
        {"order_id": 12, "product_id": 9, "product_category": None},
    ]


def test_lookup_with_duplicate_keys_is_refused(duckdb_url: str, landing: Path) -> None:
    environment = environment_for(duckdb_url, landing)
    write_csv(landing, "dim.csv", "id,label\n1,a\n1,b\n")
    run_pipeline(
        pipeline(
            id="dim", source={"type": "csv", "path": "dim.csv"}, destination={"dataset": "analytics.dim", "write": "replace"}
        ),
        environment,
    )
    write_csv(landing, "facts.csv", "id\n1\n")
    facts = pipeline(
        id="facts",
        source={"type": "csv", "path": "facts.csv"},
        transforms=[{"lookup": {"dataset": "analytics.dim", "on": "id", "columns": ["label"]}}],
    )
    with pytest.raises(
        TransformError, match=r"lookup keys \['id'\] are not unique in analytics.dim .* joining would duplicate rows"
    ):
        run_pipeline(facts, environment)
