"""`etl doctor`, `etl runs` and `etl logs` as an operator runs them: real processes, a real instance, real servers."""

from __future__ import annotations

import re
import time
from pathlib import Path

from dagster import DagsterInstance
from dagster._daemon.types import DaemonHeartbeat

from tests.test_cli import etl

PASSWORD = "doctor-known-password"


def beat(dagster_home: str) -> None:
    """A heartbeat as a running daemon writes it, through the instance's own API."""
    instance = DagsterInstance.from_config(dagster_home)
    instance.add_daemon_heartbeat(DaemonHeartbeat(time.time(), "SENSOR", "doctor-test"))


def test_doctor_passes_on_a_healthy_embedded_deployment_and_names_the_missing_daemon(project: dict) -> None:
    before = etl("doctor", "--skip", "embedding")
    assert before.returncode == 1
    assert "FAIL platform tables: not at this version: _etl.load_ledger missing" in before.stdout
    assert "FAIL daemon heartbeat: no daemon has ever run" in before.stdout and "dagster-daemon run" in before.stdout

    assert etl("run", "customers").returncode == 0
    beat(project["DAGSTER_HOME"])
    after = etl("doctor")
    assert after.returncode == 0, after.stdout + after.stderr
    for check in (
        "warehouse reachable",
        "warehouse writable",
        "platform tables",
        "landing zone",
        "lake",
        "lake disk space",
        "dbt project",
        "embedding model",
        "dagster instance storage",
        "daemon heartbeat",
    ):
        assert f"PASS {check}:" in after.stdout
    # The project serves the demo API (as `etl demo` and `etl ui` do): its server is checked like any other.
    assert re.search(r"PASS service 127\.0\.0\.1:\d+ \(reviews\):", after.stdout), after.stdout
    assert "all 11 checks passed" in after.stdout


def test_doctor_fails_each_unreachable_part_with_its_fix_and_no_password(project: dict, tmp_path: Path) -> None:
    """A warehouse and an instance storage on a port where nothing listens, and a SQL source on another."""
    Path(project["DAGSTER_HOME"], "dagster.yaml").write_text(
        f"storage:\n  postgres:\n    postgres_url: postgresql://postgres:{PASSWORD}@127.0.0.1:1/dagster\n"
    )
    Path(project["ETL_PIPELINES_DIR"], "remote.yaml").write_text(
        "id: remote\nsource: {type: sql, url: '${REMOTE_DB}', table: public.things}\n"
        "destination: {dataset: analytics.remote, write: replace}\n"
    )
    env = {
        "ETL_WAREHOUSE_URL": f"postgresql://postgres:{PASSWORD}@127.0.0.1:2/test",
        "REMOTE_DB": f"postgresql://reader:{PASSWORD}@127.0.0.1:3/shop",
        "ETL_LANDING_DIR": str(tmp_path / "no" / "such" / "landing"),
    }
    result = etl("doctor", "--skip", "embedding", "--skip", "dbt", env=env)
    assert result.returncode == 1
    out = result.stdout
    assert "FAIL warehouse reachable:" in out and "127.0.0.1:2" in out and "fix: check ETL_WAREHOUSE_URL" in out
    assert "FAIL dagster instance storage:" in out and "fix: check the storage in" in out
    assert "FAIL service 127.0.0.1:3 (remote):" in out and "correct the url in remote" in out
    assert "FAIL landing zone:" in out and "landing does not exist" in out and "fix: create the folder" in out
    assert "PASS lake:" in out
    assert PASSWORD not in out + result.stderr


def test_runs_and_logs_show_the_root_cause_of_a_failed_run(project: dict) -> None:
    orders_file = Path(project["ETL_PIPELINES_DIR"]) / "orders.yaml"
    orders_file.write_text(orders_file.read_text().replace("on: product_id", "on: product_key"))
    assert etl("run", "products").returncode == 0
    assert etl("run", "orders").returncode == 1
    instance = DagsterInstance.from_config(project["DAGSTER_HOME"])
    failed = [r for r in instance.get_runs() if r.job_name == "orders_job"]
    assert len(failed) == 1

    listing = etl("runs", "--failed")
    assert listing.returncode == 0 and failed[0].run_id in listing.stdout and "products_job" not in listing.stdout
    everything = etl("runs").stdout
    assert "orders_job" in everything and "products_job" in everything

    shown = etl("logs", failed[0].run_id[:8])
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith(f"run {failed[0].run_id}  job orders_job  status FAILURE")
    assert lines[1].startswith("root cause (analytics__orders):") and "product_key" in lines[1] and "has no column(s)" in lines[1]
    assert any("STEP_FAILURE" in line for line in lines) and any("RUN_START" in line for line in lines)
    step_only = etl("logs", failed[0].run_id, "--step", "analytics__orders").stdout
    assert "RUN_START" not in step_only and "STEP_START" in step_only

    assert etl("logs", "nosuchrun").returncode == 2
