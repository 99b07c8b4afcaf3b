"""`etl follow`: a stream pipeline's micro-batches back to back in one process, stopped cleanly by SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
import yaml

from etl_platform.engine.follow import follow
from etl_platform.errors import SpecError
from tests.conftest import environment_for, pipeline, rows
from tests.processes import stop_group
from tests.streams_brokers import broker_stream
from tests.test_stream_sources import events

ETL = str(Path(sys.executable).parent / "etl")


def _published(url: str) -> list[int]:
    try:
        return sorted(int(r["n"]) for r in rows(url, "SELECT n FROM raw.events"))
    except psycopg.errors.UndefinedTable:  # the first batch has not created the table yet
        return []


def _wait_for(url: str, expected: list[int], process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 90
    while _published(url) != expected:
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"{_published(url)[-3:]} after 90 s\n{log.read_text()}"
        time.sleep(0.2)


def test_follow_publishes_batches_as_they_arrive_and_stops_on_sigterm(tmp_path: Path, postgresql_url: str) -> None:
    with broker_stream("redis") as stream:
        pipelines = tmp_path / "pipelines"
        pipelines.mkdir()
        document = {
            "id": "events",
            "source": {**stream.source, "max_messages": 50, "max_wait_seconds": 0.2},
            "destination": {"dataset": "raw.events", "write": "append"},
        }
        (pipelines / "events.yaml").write_text(yaml.safe_dump(document))
        environ = {**os.environ, "ETL_PIPELINES_DIR": str(pipelines), "ETL_WAREHOUSE_URL": postgresql_url}
        environ |= {"ETL_DATA_DIR": str(tmp_path / "data"), "DAGSTER_HOME": str(tmp_path / "dagster_home")}
        log = tmp_path / "follow.log"
        stream.produce(events(0, 120))  # more than one micro-batch of 50
        with log.open("w") as out:
            process = subprocess.Popen(
                [ETL, "follow", "events", "--idle-wait", "0.2"],
                stdout=out, stderr=subprocess.STDOUT, env=environ, start_new_session=True,
            )  # fmt: skip
        try:
            _wait_for(postgresql_url, list(range(120)), process, log)
            stream.produce(events(120, 7))  # while it follows: published by the next batch, no new run asked for
            _wait_for(postgresql_url, list(range(127)), process, log)
            process.send_signal(signal.SIGTERM)
            assert process.wait(60) == 0, log.read_text()
        finally:
            stop_group(process)
    output = log.read_text()
    assert "events: stopped after 4 batches" in output, output  # 50 + 50 + 20, then the 7
    assert _published(postgresql_url) == list(range(127))


def test_follow_refuses_a_batch_source(tmp_path: Path, duckdb_url: str) -> None:
    spec = pipeline(id="orders", source={"type": "csv", "path": str(tmp_path / "*.csv")})
    with pytest.raises(
        SpecError, match=r"orders: `etl follow` runs stream, postgres_cdc and mariadb_cdc pipelines.*etl run orders"
    ):
        follow(spec, environment_for(duckdb_url, tmp_path), threading.Event(), print)
