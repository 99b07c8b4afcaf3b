"""Column lineage from the spec: renames, casts, derives, lookups, aggregates, warehouse queries."""

from __future__ import annotations

from etl_platform.lineage.columns import ColumnSource, column_lineage
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
    assert {column: trace.sources for column, trace in lineage.items()} == {
        "amount": {ColumnSource(None, "amt")},
        "gross": {ColumnSource(None, "amt"), ColumnSource(None, "vat")},
        "product_name": {ColumnSource("ref.products", "name")},
    }
    # How, not only from where: the steps in order, a derive inheriting its inputs' steps.
    assert lineage["amount"].steps == ("rename amt -> amount", "cast float")
    assert lineage["gross"].steps == ("rename amt -> amount", "cast float", "derive amount * (1 + vat)")
    assert lineage["product_name"].steps == ("lookup ref.products.name",)


def test_aggregates_and_warehouse_queries() -> None:
    spec = pipeline(
        source={"type": "sql", "query": "SELECT o.amount, c.country FROM sales.orders o JOIN crm.customers c USING (id)"},
        transforms=[{"aggregate": {"group_by": ["country"], "measures": {"revenue": {"sum": "amount"}, "n": {"count": "*"}}}}],
    )
    lineage = column_lineage(spec, ["amount", "country"])
    assert {column: trace.sources for column, trace in lineage.items()} == {
        "country": {ColumnSource("crm.customers", "country")},
        "revenue": {ColumnSource("sales.orders", "amount")},
        "n": set(),
    }
    assert lineage["revenue"].steps == ("query", "sum(amount)") and lineage["country"].steps == ("query", "group by")
