"""Partitioned pipelines: each partition reads its slice, publishes only its slice, keeps its own state.

A backfill (`etl backfill`, one Dagster run per partition) publishes every slice exactly once;
re-running one partition replaces that slice alone; a merge stays within its partition; a sql
source reads its slice through a predicate built from the window, never from pasted text.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from dagster import AssetKey, DagsterInstance, DagsterRunStatus
from hypothesis import given, settings
from hypothesis import strategies as st

from etl_platform.cli.main import cli
from etl_platform.engine.runner import run_pipeline
from etl_platform.errors import SpecError
from etl_platform.spec.partitions import Partitions
from etl_platform.warehouse import open_warehouse
from sensors.file_arrival import FINISHED
from tests.conftest import REPO, environment_for, pipeline, rows, write_csv
from tests.test_embedded_pools import BIN, step_windows
from tests.test_production_daemon import service, wait_for

DAILY = {"daily": {"start": "2024-01-01", "end": "2024-01-09", "timezone": "Europe/Berlin"}}


def events(write: str = "replace", **extra) -> dict:
    return {
        "id": "events",
        "source": {"type": "csv", "path": "events/{year}/{month}/{day}.csv"},
        "transforms": [{"cast": {"id": "int", "amount": "float"}}],
        "destination": {"dataset": "raw.events", "write": write, **({"primary_key": ["id"]} if write == "merge" else {})},
        "partitions": DAILY,
        **extra,
    }


def day_file(landing: Path, day: int, ids: range, amount: float = 1.0) -> None:
    body = "".join(f"{i},{amount}\n" for i in ids)
    write_csv(landing, f"events/2024/01/{day:02d}.csv", "id,amount\n" + body)


def by_partition(url: str) -> dict[str, int]:
    found = rows(url, "SELECT _etl_partition AS p, count(*) AS n FROM raw.events GROUP BY _etl_partition ORDER BY 1")
    return {r["p"]: r["n"] for r in found}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"daily": {"start": "2024-01-01"}, "static": ["a"]}, "exactly one of"),
        ({"static": ["a", "a"]}, "each once"),
        ({"daily": {"start": "2024-01-01", "timezone": "Mars/Olympus"}}, "unknown timezone"),
    ],
)
def test_a_bad_partitions_block_names_the_fix(document: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Partitions.model_validate(document)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"source": {"type": "csv", "path": "events/*.csv"}}, "names its slice"),
        ({"source": {"type": "csv", "path": "events/{tenant}.csv"}}, "offers"),
        ({"source": {"type": "sql", "table": "raw.events_source"}}, "source_column"),
        ({"destination": {"dataset": "raw.events", "write": "replace", "format": "parquet", "path": "e"}}, "warehouse table"),
        (
            {"source": {"type": "stream", "broker": "redis", "url": "redis://127.0.0.1:6379/0", "stream": "s", "group": "g"}},
            "stream source cannot be partitioned",
        ),
        (
            {"source": {"type": "rest", "client": {"base_url": "http://127.0.0.1:1"}, "resource": {"path": "items"}}},
            "rest source cannot be partitioned",
        ),
        ({"transforms": [{"deduplicate": {"keys": ["id"], "against_target": True}}]}, "against_target"),
    ],
)
def test_a_partitioned_pipeline_must_read_and_publish_a_slice(fields: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        pipeline(**{**events(), **fields})


def test_a_path_placeholder_without_partitions_is_refused() -> None:
    with pytest.raises(SpecError, match="only a pipeline with `partitions:`"):
        pipeline(source={"type": "csv", "path": "events/{day}.csv"})


@settings(max_examples=50, deadline=None)
@given(st.dates(min_value=__import__("datetime").date(2000, 1, 1), max_value=__import__("datetime").date(2099, 12, 31)))
def test_a_daily_key_is_a_window_of_one_local_day(day) -> None:
    piece = Partitions.model_validate({"daily": {"start": "2000-01-01", "timezone": "America/New_York"}}).slice(f"{day:%Y-%m-%d}")
    assert (piece.start.date(), piece.end.date()) == (day, day + __import__("datetime").timedelta(days=1))
    assert piece.path("x/{year}{month}{day}/{partition}") == f"x/{day:%Y%m%d}/{day:%Y-%m-%d}"


def test_each_partition_publishes_only_its_slice_and_keeps_its_own_state(postgresql_url: str, landing: Path) -> None:
    spec = pipeline(**events())
    for day in (1, 2, 3):
        day_file(landing, day, range(day * 10, day * 10 + day))
    environment = environment_for(postgresql_url, landing)
    for key in ("2024-01-01", "2024-01-02", "2024-01-03"):
        assert run_pipeline(spec.for_partition(key), environment).rows_published == int(key[-1])
    assert by_partition(postgresql_url) == {"2024-01-01": 1, "2024-01-02": 2, "2024-01-03": 3}

    day_file(landing, 2, range(100, 105), amount=7.0)  # the day's export was corrected: 5 rows now
    assert run_pipeline(spec.for_partition("2024-01-02"), environment).rows_published == 5
    assert by_partition(postgresql_url) == {"2024-01-01": 1, "2024-01-02": 5, "2024-01-03": 3}
    assert rows(postgresql_url, "SELECT DISTINCT amount FROM raw.events WHERE _etl_partition = '2024-01-02'") == [{"amount": 7.0}]
    history = rows(postgresql_url, "SELECT pipeline, rows FROM _etl.load_history ORDER BY loaded_at")
    expected = ["events@2024-01-01", "events@2024-01-02", "events@2024-01-03", "events@2024-01-02"]
    assert [h["pipeline"] for h in history] == expected
    states = rows(postgresql_url, "SELECT DISTINCT pipeline FROM _etl.file_state ORDER BY 1")
    assert [s["pipeline"] for s in states] == ["events@2024-01-01", "events@2024-01-02", "events@2024-01-03"]

    with pytest.raises(SpecError, match="load one partition at a time"):
        run_pipeline(spec, environment)


def test_a_merge_stays_within_its_partition(postgresql_url: str, landing: Path) -> None:
    spec = pipeline(**events("merge"))
    day_file(landing, 1, range(1, 4))
    day_file(landing, 2, range(1, 3), amount=2.0)  # the same ids on another day: rows of that day
    environment = environment_for(postgresql_url, landing)
    run_pipeline(spec.for_partition("2024-01-01"), environment)
    run_pipeline(spec.for_partition("2024-01-02"), environment)
    day_file(landing, 1, range(3, 5), amount=9.0)  # id 3 changes, id 4 is new: within day 1 only
    run_pipeline(spec.for_partition("2024-01-01"), environment)
    found = rows(postgresql_url, "SELECT _etl_partition AS p, id, amount FROM raw.events ORDER BY 1, 2")
    assert [(r["p"][-1], r["id"], r["amount"]) for r in found] == [
        ("1", 1, 1.0), ("1", 2, 1.0), ("1", 3, 9.0), ("1", 4, 9.0), ("2", 1, 2.0), ("2", 2, 2.0)
    ]  # fmt: skip


def test_a_sql_source_reads_its_window_through_a_predicate(postgresql_url: str, landing: Path) -> None:
    warehouse = open_warehouse(postgresql_url)
    warehouse.execute("CREATE SCHEMA src")
    warehouse.execute("CREATE TABLE src.clicks (id int, at timestamp)")
    # Berlin is UTC+1 in January: 23:30 UTC on the 1st is already the 2nd there.
    warehouse.execute("INSERT INTO src.clicks VALUES (1, '2024-01-01 10:00'), (2, '2024-01-01 23:30'), (3, '2024-01-02 12:00')")
    warehouse.close()
    spec = pipeline(
        id="clicks",
        source={"type": "sql", "table": "src.clicks"},
        destination={"dataset": "raw.clicks", "write": "replace"},
        partitions={**DAILY, "source_column": "at"},
    )
    environment = environment_for(postgresql_url, landing)
    assert run_pipeline(spec.for_partition("2024-01-01"), environment).rows_published == 1
    assert run_pipeline(spec.for_partition("2024-01-02"), environment).rows_published == 2
    found = rows(postgresql_url, "SELECT id, _etl_partition AS p FROM raw.clicks ORDER BY id")
    assert [(r["id"], r["p"]) for r in found] == [(1, "2024-01-01"), (2, "2024-01-02"), (3, "2024-01-02")]


def test_a_backfill_publishes_every_partition_exactly_once(
    tmp_path: Path, postgresql_url: str, landing: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    (pipelines / "events.yaml").write_text(yaml.safe_dump(events()))
    for day in range(1, 5):
        day_file(landing, day, range(day * 100, day * 100 + 10))
    monkeypatch.setenv("ETL_PIPELINES_DIR", str(pipelines))
    monkeypatch.setenv("ETL_WAREHOUSE_URL", postgresql_url)
    monkeypatch.setenv("ETL_LANDING_DIR", str(landing))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    result = CliRunner().invoke(cli, ["backfill", "events", "--from", "2024-01-01", "--to", "2024-01-04", "--parallel", "2"])
    assert result.exit_code == 0, result.output
    days = [f"2024-01-{d:02d}" for d in range(1, 5)]
    assert by_partition(postgresql_url) == dict.fromkeys(days, 10)
    assert rows(postgresql_url, "SELECT count(DISTINCT id) AS n, count(*) AS total FROM raw.events") == [{"n": 40, "total": 40}]

    instance = DagsterInstance.from_config(str(tmp_path / "dagster_home"))
    runs = instance.get_runs()
    assert len(runs) == 4 and all(r.status == DagsterRunStatus.SUCCESS for r in runs)
    assert sorted(r.tags["dagster/partition"] for r in runs) == days
    assert instance.get_materialized_partitions(AssetKey(["raw", "events"])) == set(days)
    missing = CliRunner().invoke(cli, ["backfill", "events", "--from", "2023-12-31", "--to", "2024-01-01"])
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_dagster_job_backfill_runs_through_the_daemon_one_partition_at_a_time(
    tmp_path: Path, postgresql_url: str, dagster_pg_url: str, landing: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`dagster job backfill` queues one run per partition on the production instance (dagster.yaml:
    PostgreSQL storage, queued runs, pool limit 1); the daemon launches them all, and the pipeline's
    pool `partitions_raw_events` lets one load at a time: each partition publishes once."""
    home, pipelines = tmp_path / "dagster_home", tmp_path / "pipelines"
    home.mkdir()
    pipelines.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    (pipelines / "events.yaml").write_text(yaml.safe_dump(events()))
    days = [f"2024-01-{d:02d}" for d in range(1, 4)]
    for day in range(1, 4):
        day_file(landing, day, range(day * 100, day * 100 + day))
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_URL": dagster_pg_url,
        "ETL_PIPELINES_DIR": str(pipelines),
        "ETL_WAREHOUSE_URL": postgresql_url,
        "ETL_LANDING_DIR": str(landing),
    }
    command = ["job", "backfill", "-w", "workspace.yaml", "-j", "events_job", "--from", days[0], "--to", days[-1]]
    queued = subprocess.run(
        [str(BIN / "dagster"), *command, "--noprompt"], cwd=REPO, env=env, capture_output=True, text=True, timeout=180
    )
    assert queued.returncode == 0, queued.stdout + queued.stderr
    monkeypatch.setenv("DAGSTER_PG_URL", dagster_pg_url)
    instance = DagsterInstance.from_config(str(home))
    with service([str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], env, tmp_path / "daemon.log"):
        wait_for(
            lambda: all(r.status in FINISHED for r in instance.get_runs()) and len(instance.get_runs()) == 3,
            240,
            "the backfill's three runs",
        )
    runs = instance.get_runs()
    assert all(r.status == DagsterRunStatus.SUCCESS for r in runs), (tmp_path / "daemon.log").read_text()[-3000:]
    assert sorted(r.tags["dagster/partition"] for r in runs) == days
    assert len({r.tags["dagster/backfill"] for r in runs}) == 1
    assert by_partition(postgresql_url) == {day: int(day[-1]) for day in days}
    windows = step_windows(instance)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(windows)), f"partition loads overlapped: {windows}"
