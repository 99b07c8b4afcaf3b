"""The `etl` command as a user runs it: a real process, real exit codes, runs in the Dagster instance."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import psycopg
from dagster import DagsterInstance, DagsterRunStatus

from tests.conftest import REPO

ETL = str(Path(sys.executable).parent / "etl")


def etl(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `etl` as a user would. Output goes to files, not pipes: a process Dagster leaves behind
    (its compute-log `tail`, with the production instance) must not keep the call waiting."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        done = subprocess.run([ETL, *args], stdout=out, stderr=err, text=True, env={**os.environ, **(env or {})}, timeout=300)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(done.args, done.returncode, out.read(), err.read())


def test_list_validate_and_plan(project: dict) -> None:
    listing = etl("list")
    assert listing.returncode == 0 and "products" in listing.stdout and "0 5 * * * Europe/Berlin" in listing.stdout
    assert "webhook crm.export" in listing.stdout
    assert etl("validate").returncode == 0
    assert json.loads(etl("plan", "--json").stdout) == [["customers", "products", "reviews"], ["orders"], ["customer_value"]]


def test_validate_reports_the_broken_file_with_exit_code_1(project: dict, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("id: broken\nsource: {type: csv, path: x.csv}\ndestination: {dataset: a.b, write: upsert}\n")
    result = etl("validate", str(broken))
    assert result.returncode == 1
    assert "broken.yaml:3: destination.write: Input should be 'append', 'replace' or 'merge'" in result.stderr


def test_dry_run_shows_each_stage_and_writes_nothing(project: dict) -> None:
    result = etl("run", "customers", "--dry-run", "--sample", "50")
    assert result.returncode == 0, result.stderr
    for stage in ("source (csv): 50 rows", "transforms[1].cast: 50 rows", "transforms[3].mask: 50 rows"):
        assert stage in result.stdout
    assert "email_domain" in result.stdout
    warehouse = Path(project["ETL_DATA_DIR"], "warehouse.duckdb")
    if warehouse.exists():
        with duckdb.connect(str(warehouse), read_only=True) as connection:
            assert connection.execute("SELECT count(*) FROM information_schema.tables").fetchone() == (0,)


def test_run_goes_through_dagster_and_sets_exit_codes(project: dict) -> None:
    result = etl("run", "customers", "products")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "customers" in result.stdout and "Pipeline summary" in result.stdout
    runs = DagsterInstance.from_config(project["DAGSTER_HOME"]).get_runs()
    assert [r.status for r in runs] == [DagsterRunStatus.SUCCESS]
    assert runs[0].tags["etl/trigger"] == "cli"

    assert etl("run", "nosuch").returncode == 2
    orders_file = Path(project["ETL_PIPELINES_DIR"]) / "orders.yaml"
    orders_file.write_text(orders_file.read_text().replace("on: product_id", "on: product_key"))
    failed = etl("run", "orders")
    assert failed.returncode == 1
    assert "orders failed:" in failed.stdout and "has no column(s)" in failed.stdout and "product_key" in failed.stdout
    assert "Traceback" not in failed.stdout + failed.stderr


def test_a_second_run_loads_nothing_new_until_a_full_refresh(project: dict) -> None:
    assert etl("run", "customers").returncode == 0
    again = etl("run", "customers")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "done,nothingnew:noneworchanged" in re.sub(r"[\s│]", "", again.stdout)  # a table cell, wrapped
    refreshed = etl("run", "customers", "--full-refresh")
    assert refreshed.returncode == 0 and "nothing new" not in refreshed.stdout
    warehouse = project["ETL_WAREHOUSE_URL"].removeprefix("duckdb:///")
    with duckdb.connect(warehouse, read_only=True) as connection:
        assert connection.execute("SELECT count(*) FROM analytics.customers").fetchall() == [(390,)]
        loads = connection.execute("SELECT count(*) FROM _etl.load_history WHERE dataset = 'analytics.customers'").fetchall()
    assert loads == [(2,)]  # the first load and the full refresh; the run with nothing new published nothing
    instance = DagsterInstance.from_config(project["DAGSTER_HOME"])
    assert [r.tags.get("etl/full_refresh") for r in instance.get_runs()] == ["true", None, None]


def test_instance_on_postgres_storage(project: dict, tmp_path: Path, dagster_pg_url: str) -> None:
    home = tmp_path / "prod_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {"DAGSTER_HOME": str(home), "DAGSTER_PG_URL": dagster_pg_url}
    result = etl("run", "products", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    with psycopg.connect(dagster_pg_url.replace("+psycopg2", "")) as connection:
        statuses = connection.execute("SELECT status FROM runs").fetchall()
        events = connection.execute(
            "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'"
        ).fetchone()
    assert statuses == [("SUCCESS",)] and events[0] == 1


def test_dagster_job_launch_from_the_repo_root(project: dict) -> None:
    dagster = str(Path(sys.executable).parent / "dagster")
    launched = subprocess.run(
        [dagster, "job", "launch", "-w", "workspace.yaml", "-j", "products_job"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert launched.returncode == 0, launched.stderr
    instance = DagsterInstance.from_config(project["DAGSTER_HOME"])
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        runs = instance.get_runs()
        if runs and runs[0].is_finished:
            break
        time.sleep(0.5)
    assert [r.status for r in instance.get_runs()] == [DagsterRunStatus.SUCCESS]
