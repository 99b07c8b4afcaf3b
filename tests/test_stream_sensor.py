"""The stream sensor: a tick reads positions only and requests one run per range; the run publishes it."""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from dagster import RunRequest, SkipReason, build_sensor_context, instance_for_test

from etl_platform.definitions import build_definitions, job_name
from etl_platform.settings import Settings
from sensors.streams import stream_sensor_name
from tests.conftest import rows
from tests.streams_brokers import broker_stream
from tests.test_stream_sources import events


def test_a_tick_requests_a_run_for_the_waiting_range_and_the_run_publishes_it(tmp_path: Path, duckdb_url: str) -> None:
    with broker_stream("redis") as stream, instance_for_test() as instance:
        pipelines = tmp_path / "pipelines"
        pipelines.mkdir()
        document = {
            "id": "events",
            "source": {**stream.source, "max_messages": 100, "max_wait_seconds": 0.3},
            "destination": {"dataset": "raw.events", "write": "append"},
        }
        (pipelines / "events.yaml").write_text(yaml.safe_dump(document))
        environ = {**os.environ, "ETL_PIPELINES_DIR": str(pipelines), "ETL_WAREHOUSE_URL": duckdb_url}
        environ |= {"ETL_LANDING_DIR": str(tmp_path / "landing"), "ETL_LAKE_DIR": str(tmp_path / "lake")}
        defs = build_definitions(Settings.from_env(environ), with_dbt=False)
        sensor = defs.get_sensor_def(stream_sensor_name("events"))

        def tick():
            with build_sensor_context(instance=instance, sensor_name=sensor.name, resources=defs.resources) as context:
                return sensor(context)

        assert isinstance(tick(), SkipReason)
        stream.produce(events(0, 5))
        request = tick()
        assert isinstance(request, RunRequest) and request.run_key.startswith("events:")
        assert request.tags["etl/stream_backlog"] == "5"
        assert tick().run_key == request.run_key  # nothing published yet: the same range, which Dagster runs once

        result = defs.resolve_job_def(job_name("events")).execute_in_process(
            instance=instance, tags={"dagster/run_key": request.run_key}
        )
        assert result.success
        assert sorted(int(r["n"]) for r in rows(duckdb_url, "SELECT n FROM raw.events")) == list(range(5))
        assert isinstance(tick(), SkipReason)  # the saved position is the head: nothing waits
        stream.produce(events(5, 2))
        assert tick().run_key != request.run_key
