"""Permanent errors fail at once with their reason; only transient ones are retried (issue 13, item 6).

A bad warehouse URL, a missing database or a port nothing listens on used to be retried by the
asset's RetryPolicy for 70-90 s, and `etl run` then printed only "Exceeded max_retries of 3".
"""

from __future__ import annotations

import io
from pathlib import Path

import psycopg
import pymysql
import pytest
import yaml
from dagster import DagsterEventType, DagsterInstance
from rich.console import Console

from assets.failures import step_failure
from etl_platform.breaker import SystemUnavailable
from etl_platform.cli.run import run_through_dagster
from etl_platform.errors import SourceError, TransformError, WarehouseUnavailable
from etl_platform.instance.home import ensure_dagster_home
from etl_platform.retry import is_transient
from etl_platform.settings import Settings
from etl_platform.spec import PipelineRegistry
from tests.conftest import free_port, write_csv


@pytest.fixture
def one_pipeline_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Path:
    """A project of one CSV pipeline, no dbt layer; the test sets ETL_WAREHOUSE_URL.

    The pipeline's id differs per test: Dagster caches the last reconstructed job of a process by name.
    """
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    pipeline_id = "people_" + request.node.callspec.id
    document = {
        "id": pipeline_id,
        "source": {"type": "csv", "path": "people.csv"},
        "destination": {"dataset": f"raw.{pipeline_id}"},
    }
    (pipelines / "people.yaml").write_text(yaml.safe_dump(document))
    write_csv(tmp_path / "data" / "landing", "people.csv", "id,name\n1,Ann\n")
    environment = {
        "ETL_PIPELINES_DIR": str(pipelines),
        "ETL_DATA_DIR": str(tmp_path / "data"),
        "ETL_DBT_PROJECT_DIR": str(tmp_path / "no_dbt"),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    ensure_dagster_home(tmp_path / "dagster_home")
    return tmp_path


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("oracle://root@127.0.0.1/x", "unsupported warehouse 'oracle' in ETL_WAREHOUSE_URL"),
        ("postgresql://postgres@127.0.0.1:5432/nosuchdb_etl", 'database "nosuchdb_etl" does not exist; create the database'),
        ("postgresql://postgres@127.0.0.1:{port}/test", "Connection refused"),
        ("mysql://root:wrong@127.0.0.1:3306/test", 'mysql://root:***@127.0.0.1:3306/test: (1045, "Access denied'),
        ("mariadb://root@127.0.0.1:{port}/test", 'Connection refused)"); nothing answers there'),
    ],
    ids=["scheme", "database", "port", "mariadb_password", "mariadb_port"],
)
def test_a_configuration_error_fails_at_once_and_etl_run_prints_it(
    one_pipeline_project: Path, monkeypatch: pytest.MonkeyPatch, url: str, reason: str
) -> None:
    monkeypatch.setenv("ETL_WAREHOUSE_URL", url.format(port=free_port()))
    settings = Settings.from_env()
    (spec,) = PipelineRegistry.from_folder(settings.pipelines_dir)
    success, statuses = run_through_dagster(settings, [spec], 1, Console(file=io.StringIO()))
    assert not success
    assert statuses[0].state == "failed" and reason in statuses[0].error
    assert "max_retries" not in statuses[0].error
    instance = DagsterInstance.from_config(str(settings.dagster_home))
    (run,) = instance.get_runs()
    events = [e.dagster_event.event_type for e in instance.all_logs(run.run_id) if e.dagster_event]
    assert DagsterEventType.STEP_UP_FOR_RETRY not in events


def test_a_refused_connection_is_not_retried_even_where_loads_published_before() -> None:
    """A URL changed to a wrong port after good loads must fail at once too: refused is configuration."""
    refused = WarehouseUnavailable("cannot connect: connection refused; nothing listens there")
    assert not is_transient(refused) and not step_failure(refused).allow_retries


def test_only_transient_failures_are_retried() -> None:
    assert is_transient(SystemUnavailable("S3 at http://x is down"))
    assert is_transient(WarehouseUnavailable("starting up", transient=True))
    assert is_transient(ConnectionResetError("reset by peer"))
    assert is_transient(psycopg.errors.DeadlockDetected("deadlock detected"))
    assert is_transient(pymysql.err.OperationalError(1213, "Deadlock found when trying to get lock"))
    assert is_transient(pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query"))
    assert is_transient(TransformError("lookup dataset ref.x does not exist yet", transient=True))
    assert not is_transient(WarehouseUnavailable("password authentication failed"))
    assert not is_transient(SourceError("a.csv: malformed header"))
    assert not is_transient(TypeError("or_() takes 2 positional arguments"))  # a bug: retrying repeats it
    bug = step_failure(TypeError("or_() takes 2 positional arguments"))
    assert not bug.allow_retries and bug.description.startswith("TypeError: or_()")
