"""Checks declared once: the asset's check specs and a real run's check results both follow the plan."""

from __future__ import annotations

from pathlib import Path

from dagster import AssetKey, DagsterEventType, DagsterInstance, materialize

from etl_platform.cli.progress import AssetStatus, RunFollower
from etl_platform.definitions import build_definitions
from etl_platform.quality.plan import ANOMALY_RATE, BREAKER, DRIFT, VOLUME, plan_checks
from etl_platform.settings import Settings
from etl_platform.spec import PipelineRegistry

MEASUREMENTS, PRODUCTS = AssetKey(["analytics", "measurements"]), AssetKey(["analytics", "products"])

# A frame pipeline with every kind of check: row rules, dataset rules, volume, drift, breaker,
# anomaly detection and a Pandera model.
MODULE = """
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series
from etl_platform.spec import PipelineSpec, frame_pipeline

class Measurement(pa.DataFrameModel):
    sensor: Series[str] = pa.Field(unique=True)
    reading: Series[float] = pa.Field(ge=0)

SPEC = PipelineSpec(
    id="measurements",
    source={"type": "frame"},
    transforms=[{"detect_anomalies": {"columns": ["reading"], "methods": ["zscore"], "max_rate": 0.5}}],
    quality={
        "rules": [
            {"field": "reading", "rule": "Range", "args": [0, 100]},
            {"field": "sensor", "rule": "NotNull", "severity": "warn"},
            {"rule": "RowCount", "min": 1},
            {"field": "sensor", "rule": "Unique", "severity": "warn"},
        ],
        "volume": {"min_ratio": 0.5},
        "circuit_breaker": {"error_threshold": 50},
    },
    schema={"on_drift": "fail"},
    destination={"dataset": "analytics.measurements", "write": "replace"},
)

@frame_pipeline(SPEC, model=Measurement)
def measurements(warehouse):
    return pd.DataFrame({"sensor": [f"s{i}" for i in range(20)], "reading": [float(i % 7) for i in range(19)] + [150.0]})
"""


def test_every_planned_check_gets_exactly_one_result_in_a_real_run(project: dict) -> None:
    pipelines = Path(project["ETL_PIPELINES_DIR"])
    (pipelines / "measurements.py").write_text(MODULE)
    frame = PipelineRegistry.from_folder(pipelines).frames["measurements"]
    plan = plan_checks(frame.spec, frame.model)
    names = {check.name for check in plan}
    assert {DRIFT, VOLUME, ANOMALY_RATE, BREAKER, "range_reading", "row_count", "unique_sensor", "sensor_unique"} <= names
    assert len(names) == len(plan)

    asset = build_definitions(Settings.from_env()).resolve_assets_def(MEASUREMENTS)
    declared = {spec.name: (spec.description, spec.blocking) for spec in asset.check_specs}
    assert declared == {check.name: (check.description, check.blocking) for check in plan}

    result = materialize([asset], instance=DagsterInstance.ephemeral())
    evaluations = result.get_asset_check_evaluations()
    judged = sorted((e.check_name, e.metadata["rule"].value, e.severity.value.lower()) for e in evaluations)
    assert judged == sorted((check.name, check.description, check.severity) for check in plan)
    # A real verdict: the reading of 150 broke its range and was quarantined, within the breaker's limit; the load went on.
    range_reading = {e.check_name: e for e in evaluations}["range_reading"]
    assert range_reading.passed and range_reading.metadata["rows_failing"].value == 1


def test_progress_reaches_the_cli_as_asset_observations(project: dict) -> None:
    instance = DagsterInstance.ephemeral()
    result = materialize([build_definitions(Settings.from_env()).resolve_assets_def(PRODUCTS)], instance=instance)
    observations = [
        entry.dagster_event.asset_observation_data.asset_observation
        for entry in instance.all_logs(result.run_id)
        if entry.dagster_event and entry.dagster_event.event_type == DagsterEventType.ASSET_OBSERVATION
    ]
    assert observations and observations[-1].asset_key == PRODUCTS
    status = AssetStatus("products", "analytics.products", PRODUCTS.to_python_identifier())
    follower = RunFollower(instance, "not used: the run is known", [status])
    follower.run_id = result.run_id
    follower.poll()
    assert status.state == "done" and status.rows_read == 40
    assert status.percent == 100  # only a progress observation sets it: the whole (one-chunk) file was read
