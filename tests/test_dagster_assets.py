"""Pipelines as Dagster assets: graph, jobs, schedules, materialization metadata, clean failures."""

from __future__ import annotations

from pathlib import Path

from dagster import AssetKey, DagsterInstance, materialize

from etl_platform.definitions import build_definitions
from etl_platform.settings import Settings

ORDERS, CUSTOMERS, PRODUCTS = (AssetKey(["analytics", n]) for n in ("orders", "customers", "products"))
STAGING = {name: AssetKey(["staging", f"stg_{name}"]) for name in ("orders", "customers", "products")}
REPORT, CATEGORY_SALES = AssetKey(["marts", "daily_report"]), AssetKey(["marts", "category_sales"])


def definitions():
    return build_definitions(Settings.from_env())


def test_each_pipeline_is_an_asset_with_its_dependencies(project: dict) -> None:
    defs = definitions()
    graph = defs.resolve_asset_graph()
    crm_export = AssetKey(["crm", "export"])  # external, reported by webhook
    landing = {name: AssetKey(["landing", name]) for name in ("orders", "customers", "products")}  # input files
    assert set(graph.get_all_asset_keys()) == {
        ORDERS,
        CUSTOMERS,
        PRODUCTS,
        AssetKey(["analytics", "customer_value"]),
        AssetKey(["analytics", "reviews"]),  # from the demo API: no input-file asset
        crm_export,
        *landing.values(),
        *STAGING.values(),
        REPORT,
        CATEGORY_SALES,
    }
    # dbt sources are the pipelines' own assets: one graph from the files through the pipelines to the marts.
    assert {name: graph.get(key).parent_keys for name, key in STAGING.items()} == {
        "orders": {ORDERS},
        "customers": {CUSTOMERS},
        "products": {PRODUCTS},
    }
    assert graph.get(REPORT).parent_keys == {STAGING["orders"], STAGING["customers"]}
    assert graph.get(REPORT).group_name == "marts" and graph.get(REPORT).owners == ["team:analytics"]
    assert graph.get(CUSTOMERS).parent_keys == {crm_export, landing["customers"]}
    assert not graph.get(crm_export).is_materializable and not graph.get(landing["customers"]).is_materializable
    assert graph.get(ORDERS).parent_keys == {PRODUCTS, landing["orders"]}  # products found from the lookup, not declared
    spec = defs.resolve_assets_def(ORDERS).specs_by_key[ORDERS]
    assert spec.group_name == "sales" and spec.owners == ["team:data-platform"]
    assert spec.kinds == {"csv", "duckdb"}
    assert spec.metadata["pipeline"] == "orders"


def test_job_per_pipeline_and_schedule_in_timezone(project: dict) -> None:
    defs = definitions()
    assert {job.name for job in defs.resolve_all_job_defs()} >= {
        "customers_job",
        "orders_job",
        "products_job",
        "dbt_models_job",
        "all_pipelines",
    }
    schedule = defs.resolve_schedule_def("products_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone, schedule.job_name) == (
        "0 5 * * *",
        "Europe/Berlin",
        "products_job",
    )
    daily = defs.resolve_schedule_def("dbt_daily_schedule")
    assert (daily.cron_schedule, daily.execution_timezone, daily.job_name) == ("0 6 * * *", "Europe/Berlin", "dbt_models_job")


def test_materialize_records_counts_schema_and_row_count(project: dict) -> None:
    defs = definitions()
    assets = [defs.resolve_assets_def(key) for key in (PRODUCTS, ORDERS)]
    result = materialize(assets, instance=DagsterInstance.ephemeral())
    assert result.success
    metadata = {
        event.asset_key: {k: v.value for k, v in event.step_materialization_data.materialization.metadata.items()}
        for event in result.get_asset_materialization_events()
    }
    orders = metadata[ORDERS]
    assert orders["rows_read"] == orders["rows_published"] + orders["rows_quarantined"] + orders["rows_filtered"]
    assert orders["rows_quarantined"] == 30 and orders["rows_filtered"] == 0
    assert orders["quarantined_by_rule"] == {"malformed_line": 1, "cast": 8, "amount_in_range": 21}
    assert orders["write_mode"] == "merge"
    columns = {c.name: c.type for c in orders["dagster/column_schema"].columns}
    assert columns["amount"] == "DOUBLE" and columns["ordered_at"] == "TIMESTAMP" and columns["product_category"] == "VARCHAR"
    assert orders["dagster/row_count"] == 3972
    # Column lineage: through a lookup, and through a rename, a cast and a derive.
    lineage = orders["dagster/column_lineage"].deps_by_column
    assert [(d.asset_key, d.column_name) for d in lineage["product_category"]] == [(PRODUCTS, "category")]
    assert orders["etl/column_sources"]["order_date"] == [{"dataset": None, "column": "created_at"}]
    assert orders["etl/column_steps"]["order_date"] == [
        "rename created_at -> ordered_at",
        "cast timestamp",
        "derive CAST(ordered_at AS DATE)",
    ]


def test_bad_data_fails_the_step_with_the_platform_message(project: dict) -> None:
    orders_file = Path(project["ETL_PIPELINES_DIR"]) / "orders.yaml"
    orders_file.write_text(orders_file.read_text().replace("quantity: int", "quantity: int\n      discount: float"))
    defs = definitions()
    result = materialize(
        [defs.resolve_assets_def(PRODUCTS), defs.resolve_assets_def(ORDERS)],
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.user_failure_data.description
    assert "orders.yaml: transforms[1] (cast): column(s) 'discount' not found; available: order_id" in message
