"""The demo shows what the README documents: the file-arrival trigger on `orders`, and Dagster's own
`dagster asset materialize` in the form the README gives, run from the repository root."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

from dagster import DagsterInstance, build_sensor_context

from etl_platform.definitions import build_definitions
from etl_platform.settings import Settings
from tests.conftest import REPO, rows

BIN = Path(sys.executable).parent
TRIGGER = "- file_arrival: {interval_seconds: 10}"


def readme_command(command: str) -> list[str]:
    """The README's example line that starts with `command` (its comment dropped), with the venv's executable."""
    lines = (REPO / "README.md").read_text().splitlines()
    words = shlex.split(next(line for line in lines if line.startswith(f".venv/bin/{command} ")), comments=True)
    return [str(BIN / words[0].removeprefix(".venv/bin/")), *words[1:]]


def test_the_demo_orders_pipeline_has_the_file_arrival_trigger_the_readme_shows(project: dict) -> None:
    assert TRIGGER in (REPO / "README.md").read_text()
    assert TRIGGER in (REPO / "assets" / "pipelines" / "orders.yaml").read_text()
    defs = build_definitions(Settings.from_env())
    sensor = defs.get_sensor_def("orders_file_arrival")
    instance = DagsterInstance.from_config(project["DAGSTER_HOME"])
    with build_sensor_context(instance=instance, sensor_name=sensor.name, resources=defs.resources) as context:
        result = sensor(context)
    files = [request.run_config["ops"]["analytics__orders"]["config"]["files"] for request in result.run_requests]
    requested = sorted(Path(file).name for batch in files for file in batch)
    assert requested == ["orders_2026-11-20.csv", "orders_2026-11-21.csv.gz"]  # the demo's two days of orders


def test_dagster_asset_materialize_works_as_the_readme_shows_it(project: dict) -> None:
    command = readme_command("dagster asset materialize")
    command[command.index("--select") + 1] = "analytics/products"  # the README's orders needs products first
    done = subprocess.run(command, cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert rows(project["ETL_WAREHOUSE_URL"], "SELECT count(*) AS n FROM analytics.products") == [{"n": 38}]
