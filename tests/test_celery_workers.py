"""Steps on dagster-celery workers (assets/workers.py): a backfill spread over two workers on the
machine's RabbitMQ, with Dagster's storage on PostgreSQL, publishes every partition exactly once,
also when one worker is killed in the middle of it (docs/scaling.md)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance, DagsterRunStatus

from assets.workers import DEFAULT_QUEUE, ML_QUEUE, queue_of
from etl_platform.instance.celery_health import celery_findings
from etl_platform.spec import PipelineSpec
from sensors.file_arrival import FINISHED
from tests.celery_cluster import broker_vhost, workers
from tests.conftest import REPO, free_port, rows
from tests.test_embedded_pools import BIN
from tests.test_partitions import by_partition, day_file, events
from tests.test_production_daemon import service, wait_for

# Starts a daemon, code servers and workers: one such test at a time (pyproject.toml, addopts).
pytestmark = pytest.mark.xdist_group("daemons")

DAYS = [f"2024-01-{d:02d}" for d in range(1, 9)]


def size(day: int) -> int:
    """Rows of a day's file: the second backfill's days are large, so that a step lasts seconds and
    the worker killed as it takes one is killed holding it (before it can finish and acknowledge)."""
    return 200 * day if day <= 4 else 20_000 * day


def test_whole_load_steps_go_to_the_ml_queue() -> None:
    plain = PipelineSpec.model_validate(events())
    deduplicating = PipelineSpec.model_validate(events(transforms=[{"deduplicate": {"keys": ["id"]}}]))
    assert (queue_of(plain), queue_of(deduplicating)) == (DEFAULT_QUEUE, ML_QUEUE)


def backfill(env: dict[str, str], first: str, last: str) -> None:
    command = [str(BIN / "dagster"), "job", "backfill", "-w", "workspace.yaml", "-j", "events_job"]
    queued = subprocess.run(
        [*command, "--from", first, "--to", last, "--noprompt"], cwd=REPO, env=env, capture_output=True, text=True, timeout=180
    )
    assert queued.returncode == 0, queued.stdout + queued.stderr


def finished(instance: DagsterInstance, count: int) -> bool:
    runs = instance.get_runs()
    return len(runs) == count and all(run.status in FINISHED for run in runs)


def test_a_backfill_on_two_celery_workers_publishes_each_partition_once_even_when_one_is_killed(
    tmp_path: Path, postgresql_url: str, dagster_pg_url: str, landing: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, pipelines = tmp_path / "dagster_home", tmp_path / "pipelines"
    home.mkdir()
    pipelines.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    (pipelines / "events.yaml").write_text(yaml.safe_dump(events()))
    for day in range(1, 9):
        day_file(landing, day, range(day * 1_000_000, day * 1_000_000 + size(day)))
    monkeypatch.setenv("DAGSTER_PG_URL", dagster_pg_url)
    instance = DagsterInstance.from_config(str(home))
    # Both workers may load a partition at once: partitions are disjoint slices (docs/scaling.md).
    instance.event_log_storage.set_concurrency_slots("partitions_raw_events", 2)
    with broker_vhost() as broker:
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "DAGSTER_PG_URL": dagster_pg_url,
            "ETL_CELERY_BROKER": broker,
            "ETL_PIPELINES_DIR": str(pipelines),
            "ETL_WAREHOUSE_URL": postgresql_url,
            "ETL_LANDING_DIR": str(landing),
        }
        daemon = [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"]
        with workers(["w1", "w2"], DEFAULT_QUEUE, env, tmp_path) as started, service(daemon, env, tmp_path / "daemon.log"):
            backfill(env, DAYS[0], DAYS[3])
            wait_for(lambda: finished(instance, 4), 300, "the first backfill's four runs")
            assert by_partition(postgresql_url) == {day: size(int(day[-1])) for day in DAYS[:4]}
            # `etl doctor`'s view of them: the broker answers, both workers consume `default`, none `ml`.
            broker_ok, default_queue, ml_queue = celery_findings(broker)
            assert broker_ok.ok and default_queue.ok and not ml_queue.ok, [f.line() for f in (broker_ok, default_queue, ml_queue)]
            assert default_queue.detail.startswith("queue default: 2 workers (w1@") and "no worker" in ml_queue.detail

            backfill(env, DAYS[4], DAYS[7])
            w1_log = tmp_path / "w1.log"
            received = w1_log.read_text().count("received")
            deadline = time.monotonic() + 240
            while w1_log.read_text().count("received") == received:  # polled fast: kill it holding the step
                assert time.monotonic() < deadline, "worker w1 took no step of the second backfill"
                time.sleep(0.05)
            os.killpg(started["w1"].pid, signal.SIGKILL)
            wait_for(lambda: finished(instance, 8), 300, "the second backfill's runs after w1 was killed")

    runs = instance.get_runs()
    assert all(run.status == DagsterRunStatus.SUCCESS for run in runs), (tmp_path / "daemon.log").read_text()[-3000:]
    assert sorted(run.tags["dagster/partition"] for run in runs) == DAYS
    assert by_partition(postgresql_url) == {day: size(int(day[-1])) for day in DAYS}
    published = rows(postgresql_url, "SELECT count(*) AS n, count(DISTINCT id) AS ids FROM raw.events")[0]
    assert published["n"] == published["ids"] == sum(size(d) for d in range(1, 9))
    # The step w1 had taken went back to the broker (late ack) and ran again on w2: 9 deliveries of 8 steps.
    deliveries = sum((tmp_path / f"{name}.log").read_text().count("received") for name in ("w1", "w2"))
    assert deliveries == 9, f"{deliveries} step deliveries for 8 runs"


def test_a_broker_that_is_down_stops_etl_run_before_any_run_starts(project: dict) -> None:
    """Without the check every step would fail with a bare "Connection refused" once the run had begun."""
    env = {**os.environ, "ETL_CELERY_BROKER": f"amqp://guest:s3cret-broker@127.0.0.1:{free_port()}//"}
    done = subprocess.run([str(BIN / "etl"), "run", "products"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "cannot reach the celery broker amqp://guest:***@127.0.0.1:" in done.stderr and "Nothing was run" in done.stderr
    assert "s3cret-broker" not in done.stdout + done.stderr
    assert DagsterInstance.from_config(project["DAGSTER_HOME"]).get_runs_count() == 0
