"""The demo pipelines end to end on DuckDB and PostgreSQL: every transform kind on real data, and the REST
pipeline against the demo API as `etl demo` serves it (two releases, loaded incrementally)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import requests

from etl_platform.cli.demo import write_demo_data
from etl_platform.cli.demo_api import DEMO_KEY, KEY_HEADER, KEY_VARIABLE, PATH, DemoApi, serving
from etl_platform.engine.environment import Environment
from etl_platform.engine.options import RunOptions, given
from etl_platform.engine.runner import run_pipeline
from etl_platform.errors import SourceError
from etl_platform.settings import Secrets, Settings
from etl_platform.sources.frame import frame_source
from etl_platform.spec import PipelineRegistry
from tests.conftest import REPO, environment_for, rows


def _counts(report) -> tuple:
    return (report.rows_read, report.rows_published, report.rows_quarantined, report.rows_filtered, report.target_rows)


def test_demo_pipelines_publish_clean_data(warehouse_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    landing = tmp_path / "landing"
    write_demo_data(landing)
    registry = PipelineRegistry.from_folder(REPO / "assets" / "pipelines")
    reports = {}
    with serving(Settings.from_env(), registry, releases=1) as (api, api_environment):  # as `etl demo` serves it
        for name, value in api_environment.items():
            monkeypatch.setenv(name, value)
        environment = environment_for(warehouse_url, landing)
        for level in registry.levels():
            for pipeline_id in level:
                python = registry.frames.get(pipeline_id)
                frame = frame_source(python, warehouse_url) if python else None
                model = python.model if python else None
                reports[pipeline_id] = run_pipeline(
                    registry.get(pipeline_id), environment, RunOptions(source=given(frame) if frame else None, model=model)
                )
        api.publish_second_release()
        second = run_pipeline(registry.get("reviews"), environment, RunOptions())
        again = run_pipeline(registry.get("reviews"), environment, RunOptions())
    counts = {p: _counts(r) for p, r in reports.items()}
    assert counts == {
        # 12 exact duplicates and 8 customers registered twice (typo or swapped names) are deduplicated
        "customers": (420, 390, 10, 20, 390),
        "products": (40, 38, 2, 0, 38),
        "orders": (4021, 3991, 30, 0, 3972),
        "customer_value": (390, 390, 0, 0, 390),
        # 300 reviews on 12 pages: 4 ratings out of range, 3 in words, 3 without a product
        "reviews": (300, 290, 10, 0, 290),
    }
    # The second release: 40 new reviews (2 dirty) and 10 edits; the incremental load reads only those,
    # the merge replaces the edited ones. A third load finds nothing new.
    assert _counts(second) == (50, 48, 2, 0, 328)
    assert (again.rows_read, again.rows_published) == (0, 0)
    edited = rows(warehouse_url, "SELECT count(*) AS n FROM analytics.reviews WHERE title LIKE '%(edited)'")
    assert edited == [{"n": 10}]
    reasons = rows(warehouse_url, "SELECT count(*) AS n FROM _etl.quarantine WHERE pipeline = 'reviews'")
    assert reasons == [{"n": 12}]
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


def test_the_demo_api_refuses_a_wrong_key_with_the_platforms_401_error(tmp_path: Path) -> None:
    registry = PipelineRegistry.from_folder(REPO / "assets" / "pipelines")
    with DemoApi(DEMO_KEY) as api:
        assert requests.get(api.url + PATH, timeout=10).status_code == 401  # the server checks the key
        assert requests.get(api.url + PATH, headers={KEY_HEADER: DEMO_KEY}, timeout=10).json()["meta"]["total"] == 340
        landing = tmp_path / "landing"
        landing.mkdir()
        secrets = Secrets({"ETL_DEMO_API_URL": api.url, KEY_VARIABLE: "not-the-demo-key"})
        environment = Environment.at(f"duckdb:///{tmp_path / 'w.duckdb'}", landing, tmp_path / "lake", secrets=secrets)
        with pytest.raises(SourceError, match=r"GET .*/v1/reviews\?.*: HTTP 401 \(check the credentials\)") as refused:
            run_pipeline(registry.get("reviews"), environment, RunOptions())
    assert not refused.value.transient  # a wrong key fails at once, never retried
    assert "not-the-demo-key" not in str(refused.value)
    assert api.requests == 3  # two above, one for the run
