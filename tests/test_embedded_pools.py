"""The embedded instance's pool limits: two loads of one dataset, or two dbt builds, started together take turns.

Two `etl run` processes of the same pipeline share the embedded instance (SQLite storage written
by `etl`); its `concurrency: pools: default_limit: 1` makes the second step wait for the first's
slot of pool `dataset_<schema>_<table>`, so their step windows never overlap.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from dagster import DagsterEventType, DagsterInstance, EventRecordsFilter

from etl_platform.definitions import DBT_JOB
from etl_platform.instance.home import ensure_dagster_home, open_instance
from tests.conftest import REPO, rows, write_csv

BIN = Path(sys.executable).parent


def step_windows(instance: DagsterInstance) -> list[tuple[float, float]]:
    """(start, end) of every step that ran, from the event log."""
    times: dict[str, list[float]] = {}
    for kind in (DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS):
        for record in instance.get_event_records(EventRecordsFilter(event_type=kind)):
            times.setdefault(record.event_log_entry.run_id, []).append(record.event_log_entry.timestamp)
    return sorted((min(t), max(t)) for t in times.values())


def test_two_loads_of_one_dataset_take_turns_on_the_embedded_instance(tmp_path: Path, postgresql_url: str) -> None:
    pipelines, landing = tmp_path / "pipelines", tmp_path / "landing"
    pipelines.mkdir()
    document = {
        "id": "bulk",
        "source": {"type": "csv", "path": "bulk/*.csv"},
        "destination": {"dataset": "raw.bulk", "write": "replace"},
    }
    (pipelines / "bulk.yaml").write_text(yaml.safe_dump(document))
    write_csv(landing, "bulk/a.csv", "id,name\n" + "".join(f"{i},n{i}\n" for i in range(200_000)))
    env = {
        **os.environ,
        "ETL_PIPELINES_DIR": str(pipelines),
        "ETL_LANDING_DIR": str(landing),
        "ETL_WAREHOUSE_URL": postgresql_url,
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
    }
    runs = [
        subprocess.Popen([str(BIN / "etl"), "run", "bulk"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(2)
    ]
    try:
        outputs = [run.communicate(timeout=240)[0].decode() for run in runs]
    finally:
        for run in runs:
            run.kill()
            run.wait()
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert "default_limit: 1" in (tmp_path / "dagster_home" / "dagster.yaml").read_text()
    first, second = step_windows(DagsterInstance.from_config(str(tmp_path / "dagster_home")))
    assert first[1] <= second[0], f"the two loads overlapped: {first} and {second}"
    assert rows(postgresql_url, "SELECT count(*) AS n FROM raw.bulk") == [{"n": 200_000}]


def test_two_dbt_builds_take_turns_on_the_embedded_instance(tmp_path: Path) -> None:
    """Two `dbt build` runs started together on one DuckDB file: pool `dbt_project` (assets/dbt.py)
    lets one build at a time, so the second waits instead of failing on the file's lock."""
    from etl_platform.dbt_layer import prepare_manifest
    from etl_platform.warehouse import open_warehouse
    from tests.test_production_daemon import drops_marts_project

    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    warehouse = open_warehouse(url)
    warehouse.execute("CREATE SCHEMA raw")
    warehouse.execute("CREATE TABLE raw.drops AS SELECT 1 AS id, 10.0 AS amount")
    warehouse.close()
    (tmp_path / "pipelines").mkdir()
    env = {
        **os.environ,
        "ETL_PIPELINES_DIR": str(tmp_path / "pipelines"),
        "ETL_DBT_PROJECT_DIR": str(drops_marts_project(tmp_path / "dbt_project")),
        "ETL_WAREHOUSE_URL": url,
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
    }
    prepare_manifest(tmp_path / "dbt_project", url, env)  # parsed once, not by both builds at once
    ensure_dagster_home(tmp_path / "dagster_home")
    # `dagster job execute` opens storage without `etl`'s lock: two on a fresh folder would both
    # create it (two alembic heads). Create it once, as the first `etl` command on a laptop does.
    open_instance(tmp_path / "dagster_home").dispose()
    command = [str(BIN / "dagster"), "job", "execute", "-m", "etl_platform.definitions", "-j", DBT_JOB]
    builds = [subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
    try:
        outputs = [build.communicate(timeout=300)[0].decode()[-3000:] for build in builds]
    finally:
        for build in builds:
            build.kill()
            build.wait()
    assert [build.returncode for build in builds] == [0, 0], outputs
    first, second = step_windows(DagsterInstance.from_config(str(tmp_path / "dagster_home")))
    assert first[1] <= second[0], f"the two dbt builds overlapped: {first} and {second}"
