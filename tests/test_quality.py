"""Quality gates on DuckDB and PostgreSQL: every rule passing and failing, breaker, blocking audits."""

from __future__ import annotations

import datetime
from pathlib import Path

import polars as pl
import pytest
from dagster import AssetKey, DagsterInstance, materialize

from etl_platform.engine.options import RunOptions, given
from etl_platform.engine.runner import run_pipeline
from etl_platform.quality.audit import QualityGateFailed
from etl_platform.spec.quality import CustomChecks, Rule
from tests.conftest import environment_for, pipeline, rows, write_csv

HEADER = "id,age,email,code,status,name,n,country\n"
CLEAN = [
    "1,30,a@x.com,ABC,new,Ann,1,DE",
    "2,45,b@y.org,XYZ,paid,Bo,2,FR",
]
# Row 3 breaks every row rule once: age range, email, code regex, status, name length, n type, country (custom).
DIRTY = "3,150,not-an-email,abc1,lost,Maximilian,x,US"
CASTS = [{"cast": {"id": "int", "age": "int"}}]
ROW_RULES = [
    {"field": "age", "rule": "Range", "args": [18, 120]},
    {"field": "email", "rule": "Email"},
    {"field": "code", "rule": "Regex", "args": ["[A-Z]{3}"]},
    {"field": "status", "rule": "IsIn", "args": ["new", "paid"]},
    {"field": "name", "rule": "Length", "args": [1, 5]},
    {"field": "n", "rule": "Type", "args": ["int"]},
    {"field": "id", "rule": "NotNull"},
    {"field": "country", "rule": "european"},
]


CHECKS = CustomChecks()


@CHECKS.register("european")
def _european(column: pl.Expr) -> pl.Expr:
    return column.is_in(["DE", "FR", "ES"])


# These tests rewrite input.csv for each load: to an append, each rewrite is a new delivery to append.
REDELIVERED = {"on_changed_file": "append"}


def load(url: str, landing: Path, lines: list[str], rules: list[dict], breaker: dict | None = None, write: str = "replace"):
    write_csv(landing, "input.csv", HEADER + "".join(line + "\n" for line in lines))
    quality = {"rules": rules, **({"circuit_breaker": breaker} if breaker else {})}
    destination = {"dataset": "analytics.people", "write": write, **({"primary_key": ["id"]} if write == "merge" else {})}
    destination |= REDELIVERED if write == "append" else {}
    spec = pipeline(custom_checks=CHECKS, transforms=CASTS, quality=quality, destination=destination)
    return run_pipeline(spec, environment_for(url, landing))


def by_name(report) -> dict:
    return {c.name: c for c in report.checks}


def test_every_row_rule_passes_on_clean_rows(warehouse_url: str, landing: Path) -> None:
    report = load(warehouse_url, landing, CLEAN, ROW_RULES)
    assert all(c.passed for c in report.checks)
    rules = [Rule.model_validate(r, context={"custom_checks": CHECKS}) for r in ROW_RULES]
    assert {c.name for c in report.checks} == {r.check_name for r in rules} | {"schema_drift", "circuit_breaker"}
    assert (report.rows_published, report.rows_quarantined) == (2, 0)


def test_every_row_rule_fails_on_its_value_and_the_row_is_quarantined(warehouse_url: str, landing: Path) -> None:
    report = load(warehouse_url, landing, [*CLEAN, DIRTY], ROW_RULES)
    checks = by_name(report)
    failing = {name for name, c in checks.items() if not c.passed}
    assert failing == {"range_age", "email_email", "regex_code", "is_in_status", "length_name", "type_n", "european_country"}
    assert checks["range_age"].samples == [{"value": "150", "source_file": str(landing / "input.csv"), "line": 4}]
    assert checks["range_age"].failure_rate == pytest.approx(1 / 3)
    assert [r["id"] for r in rows(warehouse_url, "SELECT id FROM analytics.people ORDER BY id")] == [1, 2]
    (quarantined,) = rows(warehouse_url, "SELECT rule, column_name, reason, source_line FROM _etl.quarantine")
    assert quarantined["rule"] == "range_age" and quarantined["source_line"] == 4
    for name in ("range_age", "email_email", "regex_code", "is_in_status", "length_name", "type_n", "european_country"):
        assert name in quarantined["reason"]


def test_not_null_and_warn_severity(warehouse_url: str, landing: Path) -> None:
    rules = [{"field": "email", "rule": "NotNull"}, {"field": "status", "rule": "IsIn", "args": ["new"], "severity": "warn"}]
    report = load(warehouse_url, landing, [*CLEAN, "3,30,,ABC,new,Cy,3,DE"], rules)
    checks = by_name(report)
    assert checks["not_null_email"].rows_failed == 1 and checks["is_in_status"].rows_failed == 1
    # The warn rule only counts: row 2 (status paid) is published; the null email is quarantined.
    assert (report.rows_published, report.rows_quarantined) == (2, 1)


def test_seed_example_works_as_written(warehouse_url: str, landing: Path) -> None:
    report = load(
        warehouse_url, landing, [*CLEAN, "3,17,c@z.com,ABC,new,Cy,3,DE"], [{"field": "age", "rule": "Range", "args": [18, 120]}]
    )
    assert by_name(report)["range_age"].rows_failed == 1


def test_breaker_trips_keeps_target_and_quarantine(warehouse_url: str, landing: Path) -> None:
    load(warehouse_url, landing, CLEAN, ROW_RULES)
    before = rows(warehouse_url, "SELECT * FROM analytics.people ORDER BY id")
    with pytest.raises(QualityGateFailed) as caught:
        load(warehouse_url, landing, [*CLEAN, DIRTY], ROW_RULES, breaker={"error_threshold": 10.0, "min_record_count": 2})
    message = str(caught.value)
    assert "quality gate failed, nothing was published" in message
    assert "circuit_breaker" in message and "33.33% of 3 rows failed (threshold 10.0%): range_age 1 (33.33%)" in message
    assert "SELECT * FROM _etl.quarantine WHERE run_id = " in message
    assert rows(warehouse_url, "SELECT * FROM analytics.people ORDER BY id") == before
    assert rows(warehouse_url, "SELECT count(*) AS n FROM _etl.quarantine")[0]["n"] == 1
    assert not [c for c in caught.value.outcomes if c.name == "circuit_breaker" and c.passed]


def test_breaker_below_threshold_or_too_few_rows_publishes_good_rows(warehouse_url: str, landing: Path) -> None:
    report = load(warehouse_url, landing, [*CLEAN, DIRTY], ROW_RULES, breaker={"error_threshold": 50.0, "min_record_count": 2})
    assert by_name(report)["circuit_breaker"].passed and report.rows_published == 2
    report = load(warehouse_url, landing, [*CLEAN, DIRTY], ROW_RULES, breaker={"error_threshold": 1.0, "min_record_count": 100})
    assert by_name(report)["circuit_breaker"].passed and "not judged" in by_name(report)["circuit_breaker"].detail


def test_row_rules_whose_rows_the_breaker_let_through_pass_with_their_counts(duckdb_url: str, landing: Path) -> None:
    rules = [*ROW_RULES[:2], {"field": "status", "rule": "IsIn", "args": ["new"], "severity": "warn"}]
    report = load(duckdb_url, landing, [*CLEAN, DIRTY], rules, breaker={"error_threshold": 50.0, "min_record_count": 2})
    checks = by_name(report)
    # Quarantined within the breaker's limit: the error rules did their job (green), the counts say what they did.
    assert checks["range_age"].passed and checks["range_age"].rows_failed == 1
    assert checks["range_age"].detail == "1 failing rows quarantined, within the circuit breaker's limit"
    assert checks["email_email"].passed and checks["circuit_breaker"].passed
    assert not checks["is_in_status"].passed  # a warn rule's rows were published as they are: it stays a warning
    # A breaker that could not judge (too few rows) has not vouched for the quarantine: the rule stays failed.
    report = load(duckdb_url, landing, [*CLEAN, DIRTY], rules, breaker={"error_threshold": 50.0, "min_record_count": 100})
    assert not by_name(report)["range_age"].passed


@pytest.mark.parametrize("write", ["append", "merge"])
def test_unique_error_rule_blocks_the_publish(warehouse_url: str, landing: Path, write: str) -> None:
    rules = [{"field": "name", "rule": "Unique"}]
    load(warehouse_url, landing, CLEAN, rules, write=write)
    before = rows(warehouse_url, "SELECT * FROM analytics.people ORDER BY id")
    with pytest.raises(QualityGateFailed, match=r"unique_name \(name has no duplicates\): 2 failing"):
        load(warehouse_url, landing, ["7,30,c@z.com,ABC,new,Ann,3,DE"], rules, write=write)
    assert rows(warehouse_url, "SELECT * FROM analytics.people ORDER BY id") == before


def test_row_count_freshness_and_custom_query(warehouse_url: str, landing: Path) -> None:
    today = datetime.date.today().isoformat()
    write_csv(landing, "input.csv", f"id,amount,at\n1,5,{today} 00:00:00\n2,-1,2020-01-01 00:00:00\n")
    rules = [
        {"rule": "RowCount", "min": 1, "max": 10},
        {"field": "at", "rule": "Freshness", "max_age": "2d"},
        {"rule": "CustomQuery", "name": "no_negative", "sql": "SELECT * FROM {dataset} WHERE amount < 0", "severity": "warn"},
    ]
    casts = [{"cast": {"id": "int", "amount": "float", "at": "timestamp"}}]
    appended = {"dataset": "analytics.target", "write": "append", **REDELIVERED}
    spec = pipeline(transforms=casts, quality={"rules": rules}, destination=appended)
    report = run_pipeline(spec, environment_for(warehouse_url, landing))
    checks = by_name(report)
    assert checks["row_count"].passed and checks["freshness_at"].passed
    assert not checks["no_negative"].passed and checks["no_negative"].rows_failed == 1
    assert checks["no_negative"].samples[0]["id"] == 2
    stale = [{"field": "at", "rule": "Freshness", "max_age": "1d"}, {"rule": "RowCount", "min": 5}]
    write_csv(landing, "input.csv", "id,amount,at\n3,5,2020-01-01 00:00:00\n")
    with pytest.raises(QualityGateFailed, match=r"freshness_at .*row_count"):
        run_pipeline(
            pipeline(transforms=casts, quality={"rules": stale}, destination=appended), environment_for(warehouse_url, landing)
        )


def test_tripped_breaker_stops_downstream_in_dagster(project: dict) -> None:
    from etl_platform.definitions import build_definitions
    from etl_platform.settings import Settings

    products = Path(project["ETL_PIPELINES_DIR"]) / "products.yaml"
    products.write_text(products.read_text().replace("quality:\n", "quality:\n  circuit_breaker: {error_threshold: 1.0}\n"))
    defs = build_definitions(Settings.from_env())
    keys = [AssetKey(["analytics", n]) for n in ("products", "orders")]
    result = materialize([defs.resolve_assets_def(k) for k in keys], instance=DagsterInstance.ephemeral(), raise_on_error=False)
    assert not result.success
    evaluations = {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    assert evaluations["circuit_breaker"] is False
    materialized = [e.asset_key for e in result.get_asset_materialization_events()]
    assert materialized == []  # neither products (breaker) nor orders (downstream, skipped)


def test_volume_anomaly_after_a_history_of_normal_loads(warehouse_url: str, landing: Path) -> None:
    volume = {"min_ratio": 0.5, "history": 5, "min_history": 3}
    normal = [f"{i},30,a@x.com,ABC,new,Ann,1,DE" for i in range(1, 11)]

    def load_rows(lines: list[str]):
        write_csv(landing, "input.csv", HEADER + "".join(line + "\n" for line in lines))
        spec = pipeline(
            transforms=CASTS, quality={"volume": volume}, destination={"dataset": "analytics.people", "write": "replace"}
        )
        return run_pipeline(spec, environment_for(warehouse_url, landing))

    first = load_rows(normal)
    assert "not judged" in by_name(first)["volume_anomaly"].detail
    for _ in range(3):
        assert by_name(load_rows(normal))["volume_anomaly"].passed
    before = rows(warehouse_url, "SELECT count(*) AS n FROM analytics.people")
    with pytest.raises(QualityGateFailed, match=r"volume_anomaly .*1 rows; median of the last 4 loads 10; expected at least 5"):
        load_rows(normal[:1])
    assert rows(warehouse_url, "SELECT count(*) AS n FROM analytics.people") == before


def load_file(url: str, landing: Path, text: str, policy: str, write: str = "append"):
    write_csv(landing, "input.csv", text)
    spec = pipeline(
        transforms=[{"cast": {"id": "int"}}],
        schema={"on_drift": policy},
        destination={"dataset": "analytics.drifting", "write": write} | (REDELIVERED if write == "append" else {}),
    )
    return run_pipeline(spec, environment_for(url, landing))


def test_drift_fail_stops_before_publishing(warehouse_url: str, landing: Path) -> None:
    first = load_file(warehouse_url, landing, "id,name\n1,a\n", "fail")
    assert first.schema_version == 1 and by_name(first)["schema_drift"].passed
    with pytest.raises(
        QualityGateFailed,
        match=r"published: against version 1: added full_name \(string\); removed name; likely renamed name -> full_name",
    ):
        load_file(warehouse_url, landing, "id,full_name\n2,b\n", "fail")
    assert rows(warehouse_url, "SELECT * FROM analytics.drifting") == [{"id": 1, "name": "a"}]


def test_drift_warn_reports_and_goes_on(warehouse_url: str, landing: Path) -> None:
    load_file(warehouse_url, landing, "id,name\n1,a\n", "warn", write="replace")
    report = load_file(warehouse_url, landing, "id,name,city\n2,b,Oslo\n", "warn", write="replace")
    drift = by_name(report)["schema_drift"]
    assert not drift.passed and drift.severity == "warn" and "added city (string)" in drift.detail
    assert report.schema_version == 2
    assert rows(warehouse_url, "SELECT * FROM analytics.drifting") == [{"id": 2, "name": "b", "city": "Oslo"}]


@pytest.mark.parametrize("write", ["append", "replace"])
def test_drift_evolve_adds_columns_and_records_a_version(warehouse_url: str, landing: Path, write: str) -> None:
    load_file(warehouse_url, landing, "id,name\n1,a\n", "evolve", write=write)
    report = load_file(warehouse_url, landing, "id,city\n2,Oslo\n", "evolve", write=write)
    assert report.schema_version == 2 and not by_name(report)["schema_drift"].passed
    expected = [{"id": 1, "name": "a", "city": None}, {"id": 2, "name": None, "city": "Oslo"}]
    published = rows(warehouse_url, "SELECT id, name, city FROM analytics.drifting ORDER BY id")
    assert published == (expected if write == "append" else expected[1:])
    versions = rows(warehouse_url, "SELECT version FROM _etl.schema_versions WHERE dataset = 'analytics.drifting' ORDER BY 1")
    assert [v["version"] for v in versions] == [1, 2]


def test_drift_evolve_refuses_type_changes(duckdb_url: str, landing: Path) -> None:
    load_file(duckdb_url, landing, "id,name\n1,a\n", "evolve")
    write_csv(landing, "input.csv", "id,name\n2,3\n")
    spec = pipeline(
        transforms=[{"cast": {"id": "int", "name": "int"}}],
        schema={"on_drift": "evolve"},
        destination={"dataset": "analytics.drifting", "write": "append", **REDELIVERED},
    )
    with pytest.raises(
        QualityGateFailed, match=r"type changed name string -> int64; evolve applies added and removed columns only"
    ):
        run_pipeline(spec, environment_for(duckdb_url, landing))


def test_schema_registry_python_api() -> None:
    from etl_platform.quality.schema_registry import SchemaRegistry, infer_schema

    registry = SchemaRegistry()
    assert registry.register(infer_schema({"id": 1, "name": "a"})) == 1
    is_drift, new_schema = registry.detect_drift({"id": 1, "name": "a", "age": 3})
    assert is_drift and new_schema == {"id": "int64", "name": "string", "age": "int64"}
    assert registry.detect_drift(pl.DataFrame({"id": [1], "name": ["b"]}))[0] is False


def test_automation_does_not_run_downstream_of_a_failed_blocking_check(project: dict) -> None:
    import json

    from dagster import evaluate_automation_conditions

    from etl_platform.definitions import build_definitions
    from etl_platform.settings import Settings

    products_file = Path(project["ETL_PIPELINES_DIR"]) / "products.yaml"
    products_file.write_text(
        products_file.read_text().replace("quality:\n", "quality:\n  circuit_breaker: {error_threshold: 10.0}\n")
    )
    orders_file = Path(project["ETL_PIPELINES_DIR"]) / "orders.yaml"  # file-triggered: it must ask for upstream updates
    orders_file.write_text(
        orders_file.read_text().replace("{interval_seconds: 10}", "{interval_seconds: 10, on_upstream_update: true}")
    )
    defs = build_definitions(Settings.from_env())
    instance = DagsterInstance.ephemeral()
    products, orders = AssetKey(["analytics", "products"]), AssetKey(["analytics", "orders"])

    def requested(cursor=None):
        result = evaluate_automation_conditions(defs, instance, cursor=cursor)
        return {key for key in (products, orders) if result.get_num_requested(key)}, result.cursor

    _, cursor = requested()  # the first evaluation sets the baseline
    assert materialize([defs.resolve_assets_def(products)], instance=instance).success
    wanted, cursor = requested(cursor)
    assert orders in wanted  # products was updated: orders runs
    assert materialize([defs.resolve_assets_def(orders)], instance=instance, raise_on_error=False).success
    _, cursor = requested(cursor)

    landing = Path(project["ETL_DATA_DIR"]) / "landing" / "products.jsonl"
    lines = [json.loads(line) for line in landing.read_text().splitlines()]
    landing.write_text("".join(json.dumps({**r, "price": "n/a"}) + "\n" for r in lines))  # breaker trips
    assert not materialize([defs.resolve_assets_def(products)], instance=instance, raise_on_error=False).success
    wanted, _ = requested(cursor)
    assert orders not in wanted


MODULE = """
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series
from etl_platform.spec import PipelineSpec, frame_pipeline

class Scores(pa.DataFrameModel):
    player: Series[str] = pa.Field(unique=True)
    score: Series[int] = pa.Field(ge=0, le=100)

SPEC = PipelineSpec(id="scores", source={"type": "frame"}, destination={"dataset": "analytics.scores", "write": "replace"})

@frame_pipeline(SPEC, model=Scores)
def scores(warehouse):
    return pd.DataFrame({"player": ["ann", "bo", "bo", "cy"], "score": [10, 50, 60, 500]})
"""


def test_frame_pipeline_with_a_pandera_model(warehouse_url: str, tmp_path: Path, landing: Path) -> None:
    from etl_platform.sources.frame import frame_source
    from etl_platform.spec import PipelineRegistry

    folder = tmp_path / "pipelines"
    folder.mkdir()
    (folder / "scores.py").write_text(MODULE)
    registry = PipelineRegistry.from_folder(folder)
    python = registry.frames["scores"]
    report = run_pipeline(
        registry.get("scores"),
        environment_for(warehouse_url, landing),
        RunOptions(source=given(frame_source(python, warehouse_url)), model=python.model),
    )
    checks = by_name(report)
    assert not checks["player_unique"].passed and checks["player_unique"].rows_failed == 2
    assert not checks["score_less_than_or_equal_to"].passed and checks["score_less_than_or_equal_to"].samples[0]["value"] == "500"
    assert checks["score_greater_than_or_equal_to"].passed
    assert rows(warehouse_url, "SELECT player, score FROM analytics.scores") == [{"player": "ann", "score": 10}]
    reasons = [r["reason"] for r in rows(warehouse_url, "SELECT reason FROM _etl.quarantine ORDER BY source_line")]
    assert len(reasons) == 3 and "score_less_than_or_equal_to" in reasons[2]
