"""The production path end to end: Dagster on PostgreSQL, the daemon, S3 (moto), a PostgreSQL warehouse.

A file put into S3 is found by the file-arrival sensor, its run is queued and launched by the
daemon, the rows land in PostgreSQL, and declarative automation then runs the dependent pipeline.
`dagster job launch` works for every pipeline job against the same instance.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance, DagsterRunStatus

from etl_platform.stores.s3 import s3_client
from tests.conftest import REPO, S3_ENV, rows

BIN = Path(sys.executable).parent

DROPS = {
    "id": "drops",
    "source": {"type": "csv"},
    "transforms": [{"cast": {"id": "int", "amount": "float"}}],
    "destination": {"dataset": "raw.drops", "write": "append"},
}
TOTALS = {
    "id": "drop_totals",
    "source": {"type": "sql", "query": "SELECT count(*) AS files_rows, sum(amount) AS total FROM raw.drops"},
    "destination": {"dataset": "reporting.drop_totals", "write": "replace"},
    "dependencies": ["drops"],
}


def production_environment(tmp_path: Path, bucket: str, endpoint: str, warehouse_url: str, dagster_pg_url: str) -> dict:
    """DAGSTER_HOME with the repository's production dagster.yaml, and the ETL_* settings of a deployment."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    trigger = {"file_arrival": {"bucket": bucket, "prefix": "incoming/", "pattern": "*.csv", "interval_seconds": 2}}
    (pipelines / "drops.yaml").write_text(yaml.safe_dump({**DROPS, "triggers": [trigger]}))
    (pipelines / "drop_totals.yaml").write_text(yaml.safe_dump(TOTALS))
    return {
        **os.environ,
        **S3_ENV,
        "AWS_ENDPOINT_URL_S3": endpoint,
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_URL": dagster_pg_url,
        "ETL_PIPELINES_DIR": str(pipelines),
        "ETL_WAREHOUSE_URL": warehouse_url,
        "ETL_LANDING_DIR": f"s3://{bucket}/landing",
        "ETL_LAKE_DIR": f"s3://{bucket}/lake",
    }


def wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out after {seconds:.0f}s waiting for {what}")


def table_rows(url: str, sql: str) -> list[dict] | None:
    try:
        return rows(url, sql)
    except Exception:
        return None


def test_a_file_in_s3_runs_the_pipeline_and_its_dependent_through_the_daemon(
    tmp_path: Path, s3_bucket: str, s3_endpoint: str, postgresql_url: str, dagster_pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = production_environment(tmp_path, s3_bucket, s3_endpoint, postgresql_url, dagster_pg_url)
    monkeypatch.setenv("DAGSTER_PG_URL", dagster_pg_url)
    log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen(
        [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        s3_client().put_object(Bucket=s3_bucket, Key="incoming/batch-1.csv", Body=b"id,amount\n1,10\n2,20\n3,30\n")
        published = wait_for(
            lambda: table_rows(postgresql_url, "SELECT count(*) AS n FROM raw.drops"), 150, "the file's rows in PostgreSQL"
        )
        assert published == [{"n": 3}]
        totals = wait_for(
            lambda: table_rows(postgresql_url, "SELECT files_rows, total FROM reporting.drop_totals"),
            150,
            "the dependent pipeline to publish",
        )
        assert totals == [{"files_rows": 3, "total": 60.0}]
        instance = DagsterInstance.from_config(env["DAGSTER_HOME"])
        runs = {r.job_name: r for r in instance.get_runs()}
        assert runs["drops_job"].tags["dagster/sensor_name"] == "drops_file_arrival"
        assert runs["drops_job"].status == DagsterRunStatus.SUCCESS

        # `dagster job launch` queues a run of every pipeline job; the daemon launches them.
        for job in ("drops_job", "drop_totals_job"):
            launched = subprocess.run(
                [str(BIN / "dagster"), "job", "launch", "-w", "workspace.yaml", "-j", job],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert launched.returncode == 0, launched.stderr

        def launched_runs_finished():
            launched = [
                r
                for r in instance.get_runs()
                if "dagster/sensor_name" not in r.tags and "dagster/automation_condition" not in r.tags
            ]
            manual = [r for r in launched if r.job_name in ("drops_job", "drop_totals_job") and "etl/trigger" not in r.tags]
            return manual if len(manual) >= 2 and all(r.is_finished for r in manual) else None

        manual = wait_for(launched_runs_finished, 150, "the launched runs to finish")
        assert {r.job_name: r.status for r in manual} == {
            "drops_job": DagsterRunStatus.SUCCESS,  # nothing new: the file was processed once
            "drop_totals_job": DagsterRunStatus.SUCCESS,
        }
        assert rows(postgresql_url, "SELECT count(*) AS n FROM raw.drops") == [{"n": 3}]
    finally:
        daemon.terminate()
        daemon.wait(30)
        log.close()
