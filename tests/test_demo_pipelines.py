"""The demo pipelines end to end on DuckDB and PostgreSQL: every transform kind on real data."""

from __future__ import annotations

import csv
from pathlib import Path

from etl_platform.cli.demo import write_demo_data
from etl_platform.engine.options import RunOptions, given
from etl_platform.engine.runner import run_pipeline
from etl_platform.sources.frame import frame_source
from etl_platform.spec import PipelineRegistry
from tests.conftest import REPO, environment_for, rows


def test_demo_pipelines_publish_clean_data(warehouse_url: str, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    write_demo_data(landing)
    registry = PipelineRegistry.from_folder(REPO / "assets" / "pipelines")
    reports = {}
    environment = environment_for(warehouse_url, landing)
    for level in registry.levels():
        for pipeline_id in level:
            python = registry.frames.get(pipeline_id)
            frame = frame_source(python, warehouse_url) if python else None
            model = python.model if python else None
            reports[pipeline_id] = run_pipeline(
                registry.get(pipeline_id), environment, RunOptions(source=given(frame) if frame else None, model=model)
            )
    counts = {p: (r.rows_read, r.rows_published, r.rows_quarantined, r.rows_filtered, r.target_rows) for p, r in reports.items()}
    assert counts == {
        # 12 exact duplicates and 8 customers registered twice (typo or swapped names) are deduplicated
        "customers": (420, 390, 10, 20, 390),
        "products": (40, 38, 2, 0, 38),
        "orders": (4021, 3991, 30, 0, 3972),
        "customer_value": (390, 390, 0, 0, 390),
    }
    assert reports["customers"].rows_deduplicated == 20
    twice = rows(warehouse_url, "SELECT count(*) AS n FROM _etl.dedup_audit WHERE similarity < 1")[0]["n"]
    assert twice >= 5  # the typo'd ones; swapped names and re-cased emails match with similarity 1
    assert rows(warehouse_url, "SELECT count(*) AS n FROM analytics.customers WHERE customer_id > 400") == [{"n": 0}]
    source = next(r for r in csv.DictReader((landing / "customers.csv").open()) if r["customer_id"] == "19")
    customer = rows(warehouse_url, "SELECT * FROM analytics.customers WHERE customer_id = 19")[0]
    # normalize (trim, lower) ran before derive; the phone number is redacted.
    cleaned = source["email"].strip().lower()
    assert source["email"] != cleaned and customer["email"] == cleaned
    assert customer["email_domain"] == cleaned.split("@")[1] and customer["phone"] == "[REDACTED]"
    orders = rows(warehouse_url, "SELECT min(amount) AS lo, max(amount) AS hi FROM analytics.orders")[0]
    assert orders["lo"] > 0 and orders["hi"] < 100000  # the amount_in_range rule quarantined the others
    lookup = rows(
        warehouse_url,
        "SELECT count(o.product_category) AS filled, count(p.product_id) AS known FROM analytics.orders o "
        "LEFT JOIN analytics.products p ON p.product_id = o.product_id",
    )[0]
    assert lookup["filled"] == lookup["known"] > 3700  # every order of a published product got its category
    products = rows(warehouse_url, "SELECT DISTINCT category FROM analytics.products ORDER BY 1")
    assert [p["category"] for p in products] == ["books", "garden", "kitchen", "sports", "toys"]  # normalize
    joined = rows(warehouse_url, "SELECT count(*) AS n FROM analytics.orders JOIN analytics.customers USING (customer_id)")[0]
    assert joined["n"] < 3972  # orders of quarantined customers have no customer row (the dbt marts leave them out)
