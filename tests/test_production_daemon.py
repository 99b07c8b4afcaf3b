"""The production path end to end: Dagster on PostgreSQL, the daemon, S3 (moto), a PostgreSQL warehouse.

A file put into S3 is found by the file-arrival sensor, its run is queued and launched by the
daemon, the rows land in PostgreSQL, and declarative automation then runs the dependent pipeline.
`dagster job launch` works for every pipeline job against the same instance. The deployment the
README describes (one long-lived code server shared by the daemon and the webserver) lives through
good files, a malformed one and one that trips the breaker, and its dbt marts follow the data.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml
from dagster import AssetCheckKey, AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from etl_platform.definitions import build_definitions
from etl_platform.settings import Settings
from etl_platform.stores.s3 import s3_client
from tests.conftest import REPO, S3_ENV, free_port, rows
from tests.processes import stop_group

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


# Starts a daemon, code servers and workers: one such test at a time (pyproject.toml, addopts).
pytestmark = pytest.mark.xdist_group("daemons")


def production_environment(
    tmp_path: Path, bucket: str, endpoint: str, warehouse_url: str, dagster_pg_url: str, **drops: object
) -> dict:
    """DAGSTER_HOME with the repository's production dagster.yaml, and the ETL_* settings of a deployment;
    `drops` adds fields to the file-triggered pipeline."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    trigger = {"file_arrival": {"bucket": bucket, "prefix": "incoming/", "pattern": "*.csv", "interval_seconds": 2}}
    (pipelines / "drops.yaml").write_text(yaml.safe_dump({**DROPS, **drops, "triggers": [trigger]}))
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
        "ETL_ALLOWED_ROOTS": f"s3://{bucket}/incoming/",  # the prefix the file trigger watches
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
    # `-w workspace.yaml`: the daemon starts its own code server (in the daemon's process group, which `service` ends).
    daemon = [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"]
    with service(daemon, env, tmp_path / "daemon.log"):
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


# A dbt project on the drops: a mart rebuilt whenever raw.drops publishes.
DBT_FILES = {
    "dbt_project.yml": "name: drops_marts\nconfig-version: 2\nprofile: etl_platform\nmodel-paths: [models]\n"
    "macro-paths: [macros]\nmodels:\n  drops_marts:\n    +schema: marts\n    +materialized: table\n",
    "models/sources.yml": "version: 2\nsources:\n  - name: raw\n    schema: raw\n    tables: [{name: drops}]\n",
    "models/drop_summary.sql": "select count(*) as files_rows, sum(amount) as total from {{ source('raw', 'drops') }}",
    "models/drop_summary.yml": "version: 2\nmodels:\n  - name: drop_summary\n    columns:\n"
    "      - name: files_rows\n        data_tests: [not_null]\n",
}
GOOD_1, GOOD_2 = "id,amount\n1,10\n2,20\n3,30\n", "id,amount\n4,40\n5,50\n"
MALFORMED = "identifier,amount\n6,60\n"  # no `id` column: the cast cannot run
TRIPS_BREAKER = "id,amount\n7,x\n8,y\n9,z\n"  # every amount fails its cast


def drops_marts_project(folder: Path) -> Path:
    for name, text in DBT_FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    (folder / "macros").mkdir()
    shutil.copy(REPO / "dbt_project" / "macros" / "generate_schema_name.sql", folder / "macros")
    return folder


@contextlib.contextmanager
def service(command: list[str], env: dict, log: Path) -> Iterator[subprocess.Popen]:
    """A long-running process in a process group of its own; the group (the run workers and code
    servers it started included) is terminated afterwards, and killed if anything in it ignores SIGTERM."""
    with log.open("w") as output:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield process
        finally:
            stop_group(process)


def location_loaded(port: int) -> bool:
    """The webserver answers and has loaded the code location from the code server."""
    query = "{ workspaceOrError { ... on Workspace { locationEntries { locationOrLoadError { __typename } } } } }"
    try:
        answer = requests.post(f"http://127.0.0.1:{port}/graphql", json={"query": query}, timeout=5).json()
    except (requests.RequestException, ValueError):
        return False
    entries = answer.get("data", {}).get("workspaceOrError", {}).get("locationEntries") or []
    return bool(entries) and all(e["locationOrLoadError"]["__typename"] == "RepositoryLocation" for e in entries)


def files_of(run) -> list[str]:
    return run.run_config.get("ops", {}).get("raw__drops", {}).get("config", {}).get("files", [])


def dead_letters(bucket: str) -> set[str]:
    listing = s3_client().list_objects_v2(Bucket=bucket, Prefix="incoming/_dead_letter/")
    return {item["Key"].rsplit("/", 1)[-1] for item in listing.get("Contents", [])}


def idle(instance: DagsterInstance) -> bool:
    busy = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]
    return not instance.get_runs(filters=RunsFilter(statuses=busy))


def red_checks(instance: DagsterInstance, keys: list[AssetCheckKey]) -> dict[str, str]:
    """Checks whose latest execution is red: an ERROR check that failed, or one that could not run."""
    red = {}
    for key, record in instance.event_log_storage.get_latest_asset_check_execution_by_key(keys).items():
        evaluation = record.event.dagster_event.event_specific_data if record.event and record.event.dagster_event else None
        warned = record.status == AssetCheckExecutionRecordStatus.FAILED and evaluation.severity.value == "WARN"
        if record.status != AssetCheckExecutionRecordStatus.SUCCEEDED and not warned:
            red[key.to_user_string()] = record.status.value
    return red


def mart(url: str) -> list[dict] | None:
    return table_rows(url, "SELECT files_rows, total FROM marts.drop_summary")


@pytest.mark.timeout(900)
def test_a_deployment_lives_through_bad_files_and_its_marts_follow_the_good_ones(
    tmp_path: Path, s3_bucket: str, s3_endpoint: str, postgresql_url: str, dagster_pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_PG_URL", dagster_pg_url)  # the instance this test reads is the deployment's
    breaker = {"quality": {"circuit_breaker": {"error_threshold": 50.0, "min_record_count": 1}}}
    env = production_environment(tmp_path, s3_bucket, s3_endpoint, postgresql_url, dagster_pg_url, **breaker)
    env["ETL_DBT_PROJECT_DIR"] = str(drops_marts_project(tmp_path / "dbt_project"))
    code, web = free_port(), free_port()
    grpc = ["--grpc-host", "127.0.0.1", "--grpc-port", str(code)]
    put = s3_client().put_object
    with contextlib.ExitStack() as services:
        # The README's production deployment: one code server, shared by the webserver and the daemon.
        server = [str(BIN / "dagster"), "code-server", "start", "-m", "etl_platform.definitions", "-a", "defs"]
        server += ["--location-name", "etl_platform", "-h", "127.0.0.1", "-p", str(code)]
        services.enter_context(service(server, env, tmp_path / "code_server.log"))
        webserver = [str(BIN / "dagster-webserver"), *grpc, "-h", "127.0.0.1", "-p", str(web)]
        services.enter_context(service(webserver, env, tmp_path / "webserver.log"))
        wait_for(lambda: location_loaded(web), 240, "the webserver to load the code location from the code server")
        daemon_log = tmp_path / "daemon.log"
        services.enter_context(service([str(BIN / "dagster-daemon"), "run", *grpc], env, daemon_log))
        instance = DagsterInstance.from_config(env["DAGSTER_HOME"])

        # A fresh deployment: the first file publishes, then the dependent pipeline and the dbt mart follow.
        put(Bucket=s3_bucket, Key="incoming/batch-1.csv", Body=GOOD_1.encode())
        wait_for(lambda: mart(postgresql_url) == [{"files_rows": 3, "total": 60.0}], 300, "the dbt mart on the first file")
        wait_for(
            lambda: table_rows(postgresql_url, "SELECT files_rows FROM reporting.drop_totals") == [{"files_rows": 3}],
            240,
            "the dependent pipeline on the first file",
        )

        # A malformed file and one that trips the breaker: each fails one run, deterministically, and is dead-lettered.
        bad = {"batch-2-malformed.csv": MALFORMED, "batch-3-breaker.csv": TRIPS_BREAKER}
        for name, text in bad.items():  # one after the other: each file's own failure moves it
            put(Bucket=s3_bucket, Key=f"incoming/{name}", Body=text.encode())
            wait_for(lambda name=name: name in dead_letters(s3_bucket), 300, f"{name} in the dead-letter prefix")
        failed = instance.get_runs(filters=RunsFilter(job_name="drops_job", statuses=[DagsterRunStatus.FAILURE]))
        failures_per_file = {name: sum(any(f.endswith(name) for f in files_of(r)) for r in failed) for name in bad}
        assert failures_per_file == dict.fromkeys(bad, 1)
        assert {f"{name}.error.txt" for name in bad} <= dead_letters(s3_bucket)

        # A good file again: it publishes, the dependent pipeline is requested again, and the mart is rebuilt.
        good_at = time.time()
        put(Bucket=s3_bucket, Key="incoming/batch-4.csv", Body=GOOD_2.encode())
        wait_for(lambda: mart(postgresql_url) == [{"files_rows": 5, "total": 150.0}], 300, "the dbt mart on the good file")
        wait_for(
            lambda: table_rows(postgresql_url, "SELECT files_rows FROM reporting.drop_totals") == [{"files_rows": 5}],
            240,
            "the dependent pipeline requested again after the good file",
        )
        after_good = datetime.datetime.fromtimestamp(good_at, datetime.UTC)
        totals = AssetKey(["reporting", "drop_totals"])
        again = [r for r in instance.get_runs(RunsFilter(created_after=after_good)) if totals in (r.asset_selection or ())]
        assert again and all(r.status == DagsterRunStatus.SUCCESS for r in again if r.is_finished)
        wait_for(lambda: idle(instance), 240, "every run to finish")

        # Nothing stays red after the good load: every check's latest result passed (or warned).
        graph = build_definitions(Settings.from_env(env)).resolve_asset_graph()
        assert red_checks(instance, list(graph.asset_check_keys)) == {}
        assert requests.get(f"http://127.0.0.1:{web}/server_info", timeout=10).status_code == 200

    # Quiet logs: no code server replaced (and left to time out) every minute, and no tick logged twice
    # (the sensor's own log line comes from the code server, the daemon logs the skip reason).
    log = (tmp_path / "code_server.log").read_text() + daemon_log.read_text()
    assert "No heartbeat received" not in log
    lines = log.splitlines()
    summaries = {line.split("drops_file_arrival - ", 1)[1] for line in lines if "- drops_file_arrival - " in line}
    skipped = {line.split("skipped: ", 1)[1] for line in lines if "Sensor drops_file_arrival skipped: " in line}
    assert skipped and not summaries & skipped
