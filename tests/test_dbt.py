"""The dbt layer through Dagster: models built on the pipelines' datasets, tests as asset checks,
lineage from the input files to the marts, and the catalog, on DuckDB and on the real PostgreSQL."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, evaluate_automation_conditions
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from etl_platform.dbt_layer import dbt_profile_env, prepare_manifest
from etl_platform.definitions import build_definitions
from etl_platform.errors import SpecError
from etl_platform.instance.catalog import build_catalog
from etl_platform.instance.lineage import add_asset_lineage, read_lineage_graph
from etl_platform.lineage.graph import ColumnRef, LineageGraph, render_text, walk
from etl_platform.settings import Settings
from etl_platform.tracing import run_span_id, tracer_provider
from etl_platform.warehouse import open_warehouse
from tests.conftest import rows
from tests.test_cli import etl

STAGING = {name: AssetKey(["staging", f"stg_{name}"]) for name in ("orders", "customers", "products")}
REPORT = AssetKey(["marts", "daily_report"])
ENVIRONMENT = dict(os.environ)  # dbt parse's process environment


def check_results(result) -> dict[tuple[str, str], tuple[bool, str]]:
    """(asset, check) -> (passed, severity) for every check evaluated in the run."""
    evaluations = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    return {(e.asset_key.to_user_string(), e.check_name): (e.passed, e.severity.value) for e in evaluations}


def chain(node) -> list[tuple[str, tuple[str, ...]]]:
    """The first path of an upstream tree, as (column, steps) pairs from the root down."""
    path = []
    while node.children:
        node = node.children[0]
        path.append((str(node.column), node.via))
    return path


@pytest.mark.parametrize("warehouse", ["duckdb", "postgresql"])
def test_marts_build_on_the_pipelines_and_lineage_runs_from_file_to_mart(
    project: dict, warehouse: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if warehouse == "postgresql":
        monkeypatch.setenv("ETL_WAREHOUSE_URL", request.getfixturevalue("postgresql_url"))
    url = os.environ["ETL_WAREHOUSE_URL"]
    exporter = InMemorySpanExporter()
    provider = tracer_provider(exporter)
    defs = build_definitions(Settings.from_env(), tracer=provider.get_tracer("test"))
    instance = DagsterInstance.from_config(project["DAGSTER_HOME"])
    assert defs.resolve_job_def("all_pipelines").execute_in_process(instance=instance).success
    result = defs.resolve_job_def("dbt_models_job").execute_in_process(instance=instance)
    assert result.success

    # The build is one step of the run's trace, each model and test a span under it, timed by dbt.
    provider.force_flush()
    spans = [span for span in exporter.get_finished_spans() if span.context.trace_id == int(result.run_id.replace("-", ""), 16)]
    (step,) = [span for span in spans if span.name == "step"]
    nodes = [span for span in spans if span.name == "dbt.node"]
    assert step.parent.span_id == run_span_id(result.run_id)
    assert len(nodes) == 25 and all(node.parent.span_id == step.context.span_id for node in nodes)
    assert all(step.start_time <= node.start_time <= node.end_time <= step.end_time for node in nodes)
    assert {node.attributes["dbt.unique_id"] for node in nodes} >= {
        "model.etl_platform.daily_report",
        "model.etl_platform.stg_orders",
    }

    # The marts hold the orders of published customers, per day and country.
    report = rows(url, "SELECT count(*) AS n, sum(orders) AS orders FROM marts.daily_report")[0]
    joined = rows(url, "SELECT count(*) AS n FROM analytics.orders JOIN analytics.customers USING (customer_id)")[0]
    assert report == {"n": 16, "orders": joined["n"]}
    assert rows(url, "SELECT count(*) AS n FROM staging.stg_orders")[0]["n"] == 3972  # a view over the pipeline's table

    # Every dbt test is an asset check; the relationships test warns about orders of quarantined customers.
    checks = check_results(result)
    dbt_checks = {key: outcome for key, outcome in checks.items() if key[0].startswith(("staging/", "marts/"))}
    assert len(dbt_checks) == 20
    assert dbt_checks.pop(("staging/stg_orders", "relationships_stg_orders_customer_id__customer_id__ref_stg_customers_")) == (
        False,
        "WARN",
    )
    assert all(passed for passed, _ in dbt_checks.values())
    assert checks[("marts/daily_report", "daily_report_one_row_per_day_and_country")] == (True, "ERROR")

    # Column lineage from the instance: a rename, a cast and a derive in the pipeline, then two dbt models.
    graph = read_lineage_graph(instance, defs.resolve_asset_graph().get_all_asset_keys())
    order_date = walk(graph, ColumnRef("marts.daily_report", "order_date"), "upstream")
    assert chain(order_date) == [
        ("staging.stg_orders.order_date", ("dbt model marts.daily_report",)),
        ("analytics.orders.order_date", ("dbt model staging.stg_orders",)),
        (
            "analytics.orders@input.created_at",
            ("rename created_at -> ordered_at", "cast timestamp", "derive CAST(ordered_at AS DATE)"),
        ),
    ]
    revenue = walk(graph, ColumnRef("marts.daily_report", "revenue"), "upstream")
    assert [column for column, _ in chain(revenue)] == [
        "staging.stg_orders.amount_eur",  # renamed from amount by the staging model
        "analytics.orders.amount",
        "analytics.orders@input.amount",
    ]
    amount = render_text([("downstream", walk(graph, ColumnRef("analytics.orders", "amount"), "downstream"))])
    assert "└─-> staging.stg_orders.amount_eur   [dbt model staging.stg_orders: amount -> amount_eur]" in amount
    assert "-> marts.daily_report.revenue   [dbt model marts.daily_report: amount_eur -> revenue]" in amount
    feeds = walk(graph, ColumnRef("analytics.products", "category"), "downstream")
    assert {str(node.column) for _, node in feeds.walk()} >= {
        "analytics.orders.product_category",  # the orders pipeline's lookup
        "staging.stg_products.category",
        "marts.category_sales.category",
    }


def test_etl_run_all_builds_the_marts_and_lineage_and_catalog_answer(project: dict) -> None:
    instance = DagsterInstance.from_config(project["DAGSTER_HOME"])
    first = etl("run", "--all")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "dbt models" in first.stdout and "marts.daily_report" in first.stdout

    # A new orders file (150 orders: the pipeline's RowCount rule wants 100) and nothing else: the marts
    # are rebuilt although customers had nothing new.
    landing = Path(project["ETL_DATA_DIR"]) / "landing" / "orders"
    header = "order_id,customer_id,product_id,quantity,amount,currency,created_at\n"
    (landing / "orders_2026-11-22.csv").write_text(
        header + "".join(f"{90000 + i},1,1,1,10.00,EUR,2026-11-22 10:00:00\n" for i in range(150))
    )
    second = etl("run", "--all")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "nothing new" in second.stdout
    url = project["ETL_WAREHOUSE_URL"]
    assert rows(url, "SELECT orders FROM marts.daily_report WHERE order_date = DATE '2026-11-22'") == [{"orders": 150}]

    answer = etl("lineage", "marts.daily_report", "--column", "order_date", "--upstream", "--format", "json")
    assert answer.returncode == 0, answer.stderr
    (tree,) = json.loads(answer.stdout)
    assert tree["upstream"][0]["dataset"] == "staging.stg_orders"
    source = tree["upstream"][0]["upstream"][0]["upstream"][0]
    assert (source["dataset"], source["column"]) == ("analytics.orders@input", "created_at")
    assert "rename created_at -> ordered_at" in source["via"] and "derive CAST(ordered_at AS DATE)" in source["via"]

    dot = etl("lineage", "marts.daily_report", "--format", "dot")
    assert dot.stdout.startswith("digraph column_lineage {")
    assert '"staging.stg_orders.amount_eur" -> "marts.daily_report.revenue"' in dot.stdout

    missing = etl("lineage", "marts.daily_report", "--column", "profit")
    assert missing.returncode == 2 and "has no column 'profit'; its columns: order_date, country" in missing.stderr

    listing = etl("catalog", "--json")
    assert listing.returncode == 0, listing.stderr
    entries = {entry["dataset"]: entry for entry in json.loads(listing.stdout)}
    report = entries["marts.daily_report"]
    assert (report["kind"], report["group"], report["owners"], report["rows"]) == ("dbt model", "marts", ["team:analytics"], 17)
    assert [c["name"] for c in report["columns"]] == ["order_date", "country", "orders", "revenue", "customers"]
    assert report["last_published"] is not None and {c["state"] for c in report["checks"]} == {"passed"}
    orders = entries["analytics.orders"]
    assert (orders["kind"], orders["owners"], orders["rows"]) == ("pipeline", ["team:data-platform"], 4122)
    assert {c["name"]: c["state"] for c in orders["checks"]}["amount_in_range"] == "passed"  # the latest load was clean
    # customers had nothing new the second time: its checks keep their results from the first load, where the
    # invalid emails were quarantined within the breaker's limit (the rule did its job).
    assert {c["name"]: c["state"] for c in entries["analytics.customers"]["checks"]}["valid_email"] == "passed"
    assert entries["crm.export"]["kind"] == "external" and entries["crm.export"]["last_published"] is None

    # SEARCH matches column names too: revenue is a column of the marts and of customer_value only.
    found = [e for e in build_catalog(build_definitions(Settings.from_env()), instance) if e.matches("REVENUE")]
    assert [e.dataset for e in found] == ["analytics.customer_value", "marts.category_sales", "marts.daily_report"]


def test_pipelines_publishing_trigger_dbt_and_a_failing_test_keeps_the_marts(project: dict) -> None:
    defs = build_definitions(Settings.from_env())
    instance = DagsterInstance.from_config(project["DAGSTER_HOME"])
    baseline = evaluate_automation_conditions(defs, instance)
    pipelines = [AssetKey(["analytics", name]) for name in ("customers", "products", "orders")]
    assert defs.resolve_job_def("all_pipelines").execute_in_process(instance=instance, asset_selection=pipelines).success

    # DatasetUpdated: the pipelines published, so the models on top of them are requested.
    after = evaluate_automation_conditions(defs, instance, cursor=baseline.cursor)
    assert {key for key in STAGING.values() if after.get_num_requested(key)} == set(STAGING.values())

    assert defs.resolve_job_def("dbt_models_job").execute_in_process(instance=instance).success
    url = project["ETL_WAREHOUSE_URL"]
    before = rows(url, "SELECT sum(revenue) AS revenue FROM marts.daily_report")

    # Amounts go missing upstream: dbt's not_null test fails its check, the run fails, and the
    # marts built on stg_orders are skipped by dbt, so they keep the last good report.
    warehouse = open_warehouse(url)
    try:
        with warehouse.transaction():
            warehouse.execute("UPDATE analytics.orders SET amount = NULL WHERE order_id <= 5")
    finally:
        warehouse.close()
    result = defs.resolve_job_def("dbt_models_job").execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    checks = check_results(result)
    assert checks[("staging/stg_orders", "not_null_stg_orders_amount_eur")] == (False, "ERROR")
    assert checks[("staging/stg_customers", "unique_stg_customers_customer_id")] == (True, "ERROR")
    built = {e.asset_key for e in result.get_asset_materialization_events()}
    assert REPORT not in built and STAGING["orders"] in built
    assert rows(url, "SELECT sum(revenue) AS revenue FROM marts.daily_report") == before
    (failure,) = [e.step_failure_data.user_failure_data.description for e in result.all_events if e.is_step_failure]
    assert failure.startswith("dbt build failed: not_null_stg_orders_amount_eur (fail, 5 rows); dbt skipped the models")
    assert "daily_report" in failure and "dbt.log" in failure

    # The same through `etl run --all`: exit 1, the failing test named once, the skipped marts shown as skipped.
    again = etl("run", "--all")
    assert again.returncode == 1
    summary = again.stdout
    assert summary.count("dbt build failed: not_null_stg_orders_amount_eur (fail, 5 rows)") == 1
    assert re.search(r"daily_report\s*│\s*marts\.daily_report\s*│\s*skipped", summary), summary
    assert re.search(r"stg_orders\s*│\s*staging\.stg_orders\s*│\s*done", summary), summary


def test_the_warehouse_url_is_the_only_place_that_configures_dbt(tmp_path: Path) -> None:
    assert dbt_profile_env(f"duckdb:///{tmp_path}/w.duckdb") == {
        "ETL_DBT_TARGET": "duckdb",
        "ETL_DBT_DUCKDB_PATH": str(tmp_path / "w.duckdb"),
    }
    assert dbt_profile_env("postgresql://etl:secret@db.internal:6432/warehouse") == {
        "ETL_DBT_TARGET": "postgres",
        "ETL_DBT_PG_HOST": "db.internal",
        "ETL_DBT_PG_PORT": "6432",
        "ETL_DBT_PG_USER": "etl",
        "ETL_DBT_PG_PASSWORD": "secret",
        "ETL_DBT_PG_DATABASE": "warehouse",
        "ETL_DBT_PG_SSLMODE": "prefer",
    }
    assert (
        dbt_profile_env("postgresql://etl@/warehouse?host=/run/postgresql&sslmode=disable")["ETL_DBT_PG_HOST"]
        == "/run/postgresql"
    )
    with pytest.raises(SpecError, match="option\\(s\\) connect_timeout are not passed on to dbt"):
        dbt_profile_env("postgresql://etl@db/warehouse?connect_timeout=5")
    with pytest.raises(SpecError, match="the dbt layer builds models in DuckDB or PostgreSQL, not 'sqlite'"):
        dbt_profile_env(f"sqlite:///{tmp_path}/w.sqlite")


def test_the_manifest_is_parsed_only_when_the_project_changed(project: dict, caplog: pytest.LogCaptureFixture) -> None:
    folder = Path(project["ETL_DBT_PROJECT_DIR"])
    manifest = prepare_manifest(folder, project["ETL_WAREHOUSE_URL"], ENVIRONMENT)
    parsed_at = manifest.stat().st_mtime_ns
    assert (
        prepare_manifest(folder, project["ETL_WAREHOUSE_URL"], ENVIRONMENT).stat().st_mtime_ns == parsed_at
    )  # current: no parse

    model = folder / "models" / "marts" / "daily_report.sql"
    model.write_text(model.read_text().replace("as customers", "as buyers"))
    prepare_manifest(folder, project["ETL_WAREHOUSE_URL"], ENVIRONMENT)
    assert "as buyers" in json.loads(manifest.read_text())["nodes"]["model.etl_platform.daily_report"]["raw_code"]

    # A model removed counts as a change too (its file's time would not tell).
    (folder / "models" / "marts" / "category_sales.sql").unlink()
    prepare_manifest(folder, project["ETL_WAREHOUSE_URL"], ENVIRONMENT)
    assert "model.etl_platform.category_sales" not in json.loads(manifest.read_text())["nodes"]

    # A project that stops parsing keeps its last good manifest, so the pipelines still load; with none, it says why.
    model.write_text("select * from {{ ref('no_such_model') }}")
    with caplog.at_level(logging.WARNING):
        assert prepare_manifest(folder, project["ETL_WAREHOUSE_URL"], ENVIRONMENT) == manifest
    assert "no_such_model" in caplog.text and "keep the last manifest that parsed" in caplog.text
    assert "as buyers" in manifest.read_text()
    shutil.rmtree(folder / "target")
    with pytest.raises(SpecError, match="dbt could not parse the project") as failure:
        prepare_manifest(folder, project["ETL_WAREHOUSE_URL"], ENVIRONMENT)
    assert "no_such_model" in str(failure.value)
    defs = build_definitions(Settings.from_env())  # the code location loads without the dbt models
    assert AssetKey(["analytics", "orders"]) in defs.resolve_asset_graph().get_all_asset_keys()
    assert REPORT not in defs.resolve_asset_graph().get_all_asset_keys()


def test_a_warehouse_without_a_dbt_adapter_loads_the_pipelines_alone(project: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETL_WAREHOUSE_URL", f"sqlite:///{project['ETL_DATA_DIR']}/warehouse.sqlite")
    defs = build_definitions(Settings.from_env())
    keys = defs.resolve_asset_graph().get_all_asset_keys()
    assert AssetKey(["analytics", "orders"]) in keys and not any(key.path[0] in {"staging", "marts"} for key in keys)
    assert "dbt_models_job" not in {job.name for job in defs.resolve_all_job_defs()}


def test_lineage_keeps_column_names_with_dots_whole() -> None:
    graph = LineageGraph()
    add_asset_lineage(
        graph,
        AssetKey(["shop", "prices"]),
        {
            "etl/column_sources": {
                "price.eur": [{"dataset": None, "column": "price.eur"}, {"dataset": "ref.rates", "column": "eur.rate"}]
            }
        },
    )
    tree = walk(graph, ColumnRef("shop.prices", "price.eur"), "upstream")
    assert [str(child.column) for child in tree.children] == ["ref.rates.eur.rate", "shop.prices@input.price.eur"]
    assert [(c.dataset, c.column) for c in (child.column for child in tree.children)] == [
        ("ref.rates", "eur.rate"),
        ("shop.prices@input", "price.eur"),
    ]


def test_a_lineage_cycle_stops_where_it_repeats() -> None:
    graph = LineageGraph()
    # A merge pipeline that reads its own target (a lookup on itself) makes a cycle.
    add_asset_lineage(graph, AssetKey(["a", "t"]), {"etl/column_sources": {"x": [{"dataset": "b.u", "column": "y"}]}})
    add_asset_lineage(graph, AssetKey(["b", "u"]), {"etl/column_sources": {"y": [{"dataset": "a.t", "column": "x"}]}})
    tree = walk(graph, ColumnRef("a.t", "x"), "upstream")
    assert [(str(parent.column), str(child.column)) for parent, child in tree.walk()] == [("a.t.x", "b.u.y")]


def test_a_project_without_a_dbt_project_runs_its_pipelines_without_the_dbt_layer(tmp_path: Path) -> None:
    missing = tmp_path / "no_dbt_project"
    settings = Settings.from_env({"ETL_DBT_PROJECT_DIR": str(missing), "ETL_DATA_DIR": str(tmp_path / "data")})
    defs = build_definitions(settings)
    assert "dbt" not in defs.resources
    keys = {".".join(key.path) for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert "analytics.orders" in keys and "marts.daily_report" not in keys
    assert not missing.exists()  # nothing written where a dbt project was expected
    with pytest.raises(SpecError, match=r"no dbt project at .*no_dbt_project \(no dbt_project.yml\); set ETL_DBT_PROJECT_DIR"):
        prepare_manifest(missing, "duckdb:///x.duckdb", {})


CUSTOMERS_ONLY = """\
id: customers
source: {type: csv, path: customers.csv}
transforms:
  - normalize: {country: [trim, upper]}
  - cast: {customer_id: int, signup_date: date}
  - derive: {email_domain: "split_part(email, '@', 2)"}
destination: {dataset: analytics.customers, write: merge, primary_key: [customer_id]}
"""


def dbt_messages(instance: DagsterInstance, run_id: str) -> str:
    """Every line the run logged (dbt's own output lines among them)."""
    return "\n".join(record.user_message for record in instance.all_logs(run_id))


def build_stg_customers(project: dict) -> tuple[object, DagsterInstance]:
    """On an empty warehouse, `customers` publishes and automation's first dbt run builds stg_customers alone."""
    Path(project["ETL_PIPELINES_DIR"], "customers.yaml").write_text(CUSTOMERS_ONLY)
    defs = build_definitions(Settings.from_env())
    instance = DagsterInstance.from_config(project["DAGSTER_HOME"])
    assert defs.resolve_job_def("customers_job").execute_in_process(instance=instance).success
    result = defs.resolve_job_def("dbt_models_job").execute_in_process(
        instance=instance, asset_selection=[STAGING["customers"]], raise_on_error=False
    )
    return result, instance


def test_the_first_build_of_one_model_runs_no_test_of_a_model_that_does_not_exist_yet(project: dict) -> None:
    result, _ = build_stg_customers(project)
    # dbt's eager indirect selection would add stg_orders' relationships test (it refers to stg_customers),
    # which fails on a fresh warehouse: relation staging.stg_orders does not exist.
    assert result.success, [e.step_failure_data.error for e in result.all_events if e.is_step_failure]
    checks = check_results(result)
    assert checks[("staging/stg_customers", "unique_stg_customers_customer_id")] == (True, "ERROR")
    assert not any(asset == "staging/stg_orders" for asset, _ in checks)
    assert (
        rows(project["ETL_WAREHOUSE_URL"], "SELECT count(*) AS n FROM staging.stg_customers")[0]["n"] == 408
    )  # 400 and 8 registered twice


def test_a_dbt_build_reuses_the_partial_parse_state_of_the_last_invocation(project: dict) -> None:
    defs = build_definitions(Settings.from_env())
    instance = DagsterInstance.from_config(project["DAGSTER_HOME"])
    assert defs.resolve_job_def("products_job").execute_in_process(instance=instance).success
    dbt_job = defs.resolve_job_def("dbt_models_job")
    assert dbt_job.execute_in_process(instance=instance, asset_selection=[STAGING["products"]]).success
    state = Path(project["ETL_DBT_PROJECT_DIR"]) / "target" / "duckdb" / "partial_parse.msgpack"
    assert state.is_file()  # kept for the next invocation
    second = dbt_job.execute_in_process(instance=instance, asset_selection=[STAGING["products"]])
    assert second.success
    log = dbt_messages(instance, second.run_id)
    assert "Found 5 models" in log  # dbt's parse summary: its output reached the run's log
    assert "full parse" not in log and "Unable to do partial parsing" not in log, log
