"""Column lineage from the spec: renames, casts, derives, lookups, aggregates, warehouse queries."""

from __future__ import annotations

from etl_platform.lineage import ColumnSource, column_lineage
from tests.conftest import pipeline


def test_renames_derives_and_lookups_carry_their_sources() -> None:
    spec = pipeline(
        transforms=[
            {"rename": {"amt": "amount"}},
            {"cast": {"amount": "float"}},
            {"derive": {"gross": "amount * (1 + vat)"}},
            {"lookup": {"dataset": "ref.products", "on": "product_id", "columns": {"name": "product_name"}}},
            {"select": ["amount", "gross", "product_name"]},
        ]
    )
    lineage = column_lineage(spec, ["amt", "vat", "product_id"])
    assert lineage == {
        "amount": {ColumnSource(None, "amt")},
        "gross": {ColumnSource(None, "amt"), ColumnSource(None, "vat")},
        "product_name": {ColumnSource("ref.products", "name")},
    }


def test_aggregates_and_warehouse_queries() -> None:
    spec = pipeline(
        source={"type": "sql", "query": "SELECT o.amount, c.country FROM sales.orders o JOIN crm.customers c USING (id)"},
        transforms=[{"aggregate": {"group_by": ["country"], "measures": {"revenue": {"sum": "amount"}, "n": {"count": "*"}}}}],
    )
    assert column_lineage(spec, ["amount", "country"]) == {
        "country": {ColumnSource("crm.customers", "country")},
        "revenue": {ColumnSource("sales.orders", "amount")},
        "n": set(),
    }
