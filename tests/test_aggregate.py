"""Aggregations: group-by with every function and a having filter; tumbling and sliding time windows."""

from __future__ import annotations

import datetime
from pathlib import Path

import pyarrow as pa
import pytest

from etl_platform.engine.runner import run_pipeline
from etl_platform.errors import SpecError
from etl_platform.ml.aggregate import Aggregator
from etl_platform.spec.ml import AggregateSpec
from tests.conftest import environment_for, pipeline, rows, write_csv

T0 = datetime.datetime(2026, 11, 22, 10, 0)
EVENTS = pa.table(
    {
        "country": ["DE", "DE", "FR", "DE", "FR"],
        "customer": [1, 2, 3, 1, 3],
        "amount": [10.0, 20.0, 5.0, 30.0, 7.0],
        "at": [
            T0,
            T0 + datetime.timedelta(minutes=20),
            T0 + datetime.timedelta(minutes=50),
            T0 + datetime.timedelta(minutes=70),
            T0 + datetime.timedelta(minutes=80),
        ],
    }
)


def aggregate(**spec) -> list[dict]:
    return grouped(Aggregator(AggregateSpec.model_validate(spec), "test")).to_pylist()


def grouped(aggregator: Aggregator) -> pa.Table:
    return pa.Table.from_batches(list(aggregator.batches(EVENTS)))


def test_group_by_with_every_function_and_having() -> None:
    measures = {
        "revenue": {"sum": "amount"},
        "average": {"mean": "amount"},
        "orders": {"count": "*"},
        "customers": {"count_distinct": "customer"},
        "smallest": {"min": "amount"},
        "largest": {"max": "amount"},
    }
    assert aggregate(group_by=["country"], measures=measures) == [
        {"country": "DE", "revenue": 60.0, "average": 20.0, "orders": 3, "customers": 2, "smallest": 10.0, "largest": 30.0},
        {"country": "FR", "revenue": 12.0, "average": 6.0, "orders": 2, "customers": 1, "smallest": 5.0, "largest": 7.0},
    ]
    assert [r["country"] for r in aggregate(group_by=["country"], measures=measures, having="revenue > 50")] == ["DE"]


def test_tumbling_and_sliding_windows() -> None:
    tumbling = aggregate(measures={"orders": {"count": "*"}}, window={"column": "at", "size": "1h"})
    assert [(r["window_start"], r["window_end"], r["orders"]) for r in tumbling] == [
        (T0, T0 + datetime.timedelta(hours=1), 3),
        (T0 + datetime.timedelta(hours=1), T0 + datetime.timedelta(hours=2), 2),
    ]
    sliding = aggregate(measures={"orders": {"count": "*"}}, window={"column": "at", "size": "1h", "every": "30m"})
    counts = {r["window_start"]: r["orders"] for r in sliding}
    # 09:30-10:30: 10:00, 10:20. 10:00-11:00: three. 10:30-11:30: 10:50, 11:10, 11:20. 11:00-12:00: two.
    assert counts == {
        T0 - datetime.timedelta(minutes=30): 2,
        T0: 3,
        T0 + datetime.timedelta(minutes=30): 3,
        T0 + datetime.timedelta(hours=1): 2,
    }


def test_a_pipeline_publishes_groups_and_accounts_for_every_row(duckdb_url: str, landing: Path) -> None:
    write_csv(landing, "sales.csv", "country,amount\nDE,1\nDE,2\nFR,3\nFR,x\n")
    spec = pipeline(
        source={"type": "csv", "path": "sales.csv"},
        transforms=[
            {"cast": {"amount": "float"}},
            {"aggregate": {"group_by": ["country"], "measures": {"total": {"sum": "amount"}}}},
        ],
        destination={"dataset": "mart.sales", "write": "replace"},
    )
    report = run_pipeline(spec, environment_for(duckdb_url, landing))
    assert (report.rows_read, report.rows_quarantined, report.rows_published, report.rows_aggregated) == (4, 1, 2, 3)
    assert rows(duckdb_url, "SELECT country, total FROM mart.sales ORDER BY country") == [
        {"country": "DE", "total": 3.0},
        {"country": "FR", "total": 3.0},
    ]


def test_window_sizes_must_be_multiples_and_having_must_parse() -> None:
    with pytest.raises(SpecError, match=r"`size` \(1h\) must be a multiple of `every` \(25m\)"):
        pipeline(
            transforms=[
                {"aggregate": {"measures": {"n": {"count": "*"}}, "window": {"column": "t", "size": "1h", "every": "25m"}}}
            ]
        )
    with pytest.raises(SpecError, match="not a valid SQL expression"):
        pipeline(transforms=[{"aggregate": {"measures": {"n": {"count": "*"}}, "having": "n >"}}])


def test_integer_sums_stay_64_bit_and_having_cannot_add_a_query(duckdb_url: str, landing: Path) -> None:
    table = grouped(Aggregator(AggregateSpec.model_validate({"measures": {"n": {"sum": "customer"}}}), "test"))
    assert table.schema.field("n").type == pa.int64() and table["n"].to_pylist() == [10]
    with pytest.raises(SpecError, match="not a valid SQL expression"):
        pipeline(transforms=[{"aggregate": {"measures": {"n": {"count": "*"}}, "having": "n > 5 UNION ALL SELECT 1"}}])


def test_sliding_windows_may_publish_more_groups_than_rows_read(duckdb_url: str, landing: Path) -> None:
    write_csv(landing, "events.csv", "at\n2026-11-22 10:10:00\n")
    window = {"column": "at", "size": "1h", "every": "30m"}
    spec = pipeline(
        source={"type": "csv", "path": "events.csv"},
        transforms=[{"cast": {"at": "timestamp"}}, {"aggregate": {"measures": {"n": {"count": "*"}}, "window": window}}],
        destination={"dataset": "mart.windows", "write": "replace"},
    )
    report = run_pipeline(spec, environment_for(duckdb_url, landing))
    assert (report.rows_read, report.rows_aggregated, report.rows_published) == (1, 1, 2)  # one event, two windows
