"""FileArrival sensors, evaluated with Dagster's sensor APIs against real S3 (moto) and real folders.

Every run a tick requests is executed (in process, on a real instance), so the tests see what a
deployment sees: state advancing only with a publish, failures counted, files dead-lettered.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from dagster import AssetKey, DagsterInstance, SensorResult, build_sensor_context, instance_for_test

from etl_platform.definitions import build_definitions, job_name
from etl_platform.settings import Settings
from etl_platform.stores.s3 import s3_client
from sensors.file_arrival import sensor_name
from tests.conftest import rows

CASTS = [{"cast": {"id": "int", "amount": "float"}}]


class Harness:
    """A project with one file-arriving pipeline: tick its sensor, run what it asks for."""

    def __init__(self, tmp_path: Path, instance: DagsterInstance, warehouse_url: str, landing: str, trigger: dict, **spec):
        pipelines = tmp_path / "pipelines"
        pipelines.mkdir(exist_ok=True)
        document = {
            "id": "arrivals",
            "source": {"type": "csv"},
            "transforms": CASTS,
            "destination": {"dataset": "raw.arrivals", "write": "append"},
            "triggers": [{"file_arrival": trigger}],
            **spec,
        }
        (pipelines / "arrivals.yaml").write_text(yaml.safe_dump(document))
        environ = {
            **os.environ,
            "ETL_PIPELINES_DIR": str(pipelines),
            "ETL_WAREHOUSE_URL": warehouse_url,
            "ETL_LANDING_DIR": landing,
            "ETL_LAKE_DIR": str(tmp_path / "lake"),
            # A trigger's own bucket is a root the deployment declares besides the landing zone.
            "ETL_ALLOWED_ROOTS": f"s3://{trigger['bucket']}" if "bucket" in trigger else "",
        }
        self.defs = build_definitions(Settings.from_env(environ))
        self.instance = instance
        self.warehouse_url = warehouse_url
        self.cursor: str | None = None
        self.name = sensor_name("arrivals")

    def tick(self) -> SensorResult:
        sensor = self.defs.get_sensor_def(self.name)
        with build_sensor_context(
            instance=self.instance, cursor=self.cursor, sensor_name=self.name, resources=self.defs.resources
        ) as context:
            result = sensor(context)
        self.cursor = result.cursor
        return result

    def run(self, result: SensorResult) -> list[bool]:
        """Execute every requested run as the daemon would launch it; returns their success."""
        job = self.defs.resolve_job_def(job_name("arrivals"))
        outcomes = []
        for request in result.run_requests:
            tags = {**request.tags, "dagster/sensor_name": self.name, "dagster/run_key": request.run_key}
            executed = job.execute_in_process(
                run_config=request.run_config, instance=self.instance, tags=tags, raise_on_error=False
            )
            outcomes.append(executed.success)
        return outcomes

    def requested_files(self, result: SensorResult) -> list[list[str]]:
        return [next(iter(r.run_config["ops"].values()))["config"]["files"] for r in result.run_requests]

    def published_ids(self) -> list[int]:
        return [r["id"] for r in rows(self.warehouse_url, "SELECT id FROM raw.arrivals ORDER BY id")]


@pytest.fixture
def instance() -> DagsterInstance:
    with instance_for_test() as instance:
        yield instance


def put(bucket: str, key: str, body: str) -> None:
    s3_client().put_object(Bucket=bucket, Key=key, Body=body.encode())


def test_s3_pages_past_1000_keys_and_never_requests_a_file_twice(
    tmp_path: Path, instance: DagsterInstance, postgresql_url: str, s3_bucket: str
) -> None:
    client = s3_client()
    for i in range(1, 1051):
        client.put_object(Bucket=s3_bucket, Key=f"drops/f{i:05d}.csv", Body=f"id,amount\n{i},1\n".encode())
    client.put_object(Bucket=s3_bucket, Key="drops/readme.txt", Body=b"not matched")
    harness = Harness(
        tmp_path,
        instance,
        postgresql_url,
        str(tmp_path / "unused"),
        {"bucket": s3_bucket, "prefix": "drops/", "pattern": "*.csv", "max_files_per_run": 500},
    )
    first = harness.tick()
    batches = harness.requested_files(first)
    assert [len(b) for b in batches] == [500, 500, 50]
    assert len({url for batch in batches for url in batch}) == 1050
    # A second tick while those runs have not run yet requests nothing more.
    assert harness.tick().run_requests == []
    assert harness.run(first) == [True, True, True]
    assert harness.published_ids() == list(range(1, 1051))
    after = harness.tick()
    assert after.run_requests == [] and "0 unprocessed file(s)" in after.skip_reason.skip_message


def test_folder_same_mtime_out_of_order_keys_and_arrivals_between_ticks(
    tmp_path: Path, instance: DagsterInstance, duckdb_url: str
) -> None:
    landing = tmp_path / "landing"
    inbox = landing / "inbox"
    inbox.mkdir(parents=True)
    for name, ident in (("b.csv", 2), ("c.csv", 3)):
        (inbox / name).write_text(f"id,amount\n{ident},1\n")
        os.utime(inbox / name, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    harness = Harness(tmp_path, instance, duckdb_url, str(landing), {"prefix": "inbox/", "pattern": "*.csv"})
    first = harness.tick()
    assert harness.run(first) == [True]
    # A key that sorts before the ones processed, with the very same modification time, still arrives.
    (inbox / "a.csv").write_text("id,amount\n1,1\n")
    os.utime(inbox / "a.csv", ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    second = harness.tick()
    assert harness.requested_files(second) == [[str(inbox / "a.csv")]]
    # A file landing after the tick listed, while its run is still to come, waits for the next tick.
    (inbox / "d.csv").write_text("id,amount\n4,1\n")
    assert harness.run(second) == [True]
    third = harness.tick()
    assert harness.requested_files(third) == [[str(inbox / "d.csv")]]
    assert harness.run(third) == [True]
    assert harness.published_ids() == [1, 2, 3, 4]
    assert harness.tick().run_requests == []


def test_reupload_with_new_etag_is_processed_again(
    tmp_path: Path, instance: DagsterInstance, duckdb_url: str, s3_bucket: str
) -> None:
    put(s3_bucket, "in/day.csv", "id,amount\n1,1\n")
    destination = {"dataset": "raw.arrivals", "write": "append", "on_changed_file": "append"}
    harness = Harness(
        tmp_path, instance, duckdb_url, f"s3://{s3_bucket}", {"prefix": "in/", "pattern": "*.csv"}, destination=destination
    )
    assert harness.run(harness.tick()) == [True]
    assert harness.tick().run_requests == []
    # The same key, new content: a new ETag, requested again; the pipeline appends a rewritten file.
    put(s3_bucket, "in/day.csv", "id,amount\n2,1\n")
    again = harness.tick()
    assert harness.requested_files(again) == [[f"s3://{s3_bucket}/in/day.csv"]]
    assert harness.run(again) == [True]
    assert harness.published_ids() == [1, 2]


def test_a_deterministic_failure_is_dead_lettered_after_one_run_and_the_good_file_loads(
    tmp_path: Path, instance: DagsterInstance, duckdb_url: str, s3_bucket: str
) -> None:
    put(s3_bucket, "in/good.csv", "id,amount\n1,1\n")
    put(s3_bucket, "in/bad.csv", "id,amount\n2,1\n3,1,extra\n")
    harness = Harness(
        tmp_path,
        instance,
        duckdb_url,
        f"s3://{s3_bucket}",
        {"prefix": "in/", "pattern": "*.csv", "max_failures": 3},
        source={"type": "csv", "on_bad_line": "fail"},
    )
    first = harness.tick()
    assert len(first.run_requests) == 1
    assert harness.run(first) == [False]  # the malformed line fails the whole load: nothing published
    # The error names bad.csv: only it is counted, as permanent (the same file fails the same way again).
    failures = rows(duckdb_url, "SELECT file_url, status, failures FROM _etl.file_state ORDER BY file_url")
    assert failures == [{"file_url": f"s3://{s3_bucket}/in/bad.csv", "status": "failed_permanently", "failures": 1}]
    retry = harness.tick()  # bad.csv moves to the dead-letter prefix at once; good.csv is retried
    assert harness.requested_files(retry) == [[f"s3://{s3_bucket}/in/good.csv"]]
    assert harness.run(retry) == [True]
    assert harness.published_ids() == [1]
    dead = s3_client().get_object(Bucket=s3_bucket, Key="in/_dead_letter/bad.csv.error.txt")["Body"].read().decode()
    assert "failed loads: 1" in dead and "malformed line" in dead
    assert s3_client().list_objects_v2(Bucket=s3_bucket, Prefix="in/bad.csv").get("KeyCount") == 0
    state = rows(duckdb_url, "SELECT status, failures FROM _etl.file_state WHERE file_url LIKE '%bad.csv'")
    assert state == [{"status": "dead_letter", "failures": 1}]
    assert harness.tick().run_requests == []


def test_a_tripped_breaker_is_dead_lettered_after_one_run(tmp_path: Path, instance: DagsterInstance, duckdb_url: str) -> None:
    landing = tmp_path / "landing"
    (landing / "in").mkdir(parents=True)
    (landing / "in" / "a.csv").write_text("id,amount\n1,one\n2,two\n")
    harness = Harness(tmp_path, instance, duckdb_url, str(landing), {"prefix": "in/"})
    assert harness.run(harness.tick()) == [False]
    assert harness.tick().run_requests == []
    note = (landing / "in" / "_dead_letter" / "a.csv.error.txt").read_text()
    assert "failed loads: 1" in note and "circuit_breaker" in note and "cannot cast 'one' in 'amount' to float" in note


def test_a_failed_run_leaves_its_files_eligible_and_a_retry_succeeds(
    tmp_path: Path, instance: DagsterInstance, duckdb_url: str
) -> None:
    landing = tmp_path / "landing"
    (landing / "in").mkdir(parents=True)
    (landing / "in" / "a.csv").write_text("id,amount,product\n1,1,p1\n")
    lookup = {"lookup": {"dataset": "ref.products", "on": "product", "columns": ["name"]}}
    harness = Harness(tmp_path, instance, duckdb_url, str(landing), {"prefix": "in/"}, transforms=[*CASTS, lookup])
    first = harness.tick()
    assert harness.run(first) == [False]  # the lookup dataset does not exist yet
    assert rows(duckdb_url, "SELECT status FROM _etl.file_state") == [{"status": "failed"}]
    import duckdb

    with duckdb.connect(duckdb_url.removeprefix("duckdb:///")) as connection:
        connection.execute("CREATE SCHEMA ref; CREATE TABLE ref.products AS SELECT 'p1' AS product, 'Pen' AS name")
    retry = harness.tick()
    assert harness.requested_files(retry) == [[str(landing / "in" / "a.csv")]]
    assert harness.run(retry) == [True]
    assert rows(duckdb_url, "SELECT id, name FROM raw.arrivals") == [{"id": 1, "name": "Pen"}]
    assert rows(duckdb_url, "SELECT status FROM _etl.file_state") == [{"status": "processed"}]


def test_lag_is_in_the_tick_message_and_observations_of_the_landing_asset(
    tmp_path: Path, instance: DagsterInstance, duckdb_url: str
) -> None:
    landing = tmp_path / "landing"
    (landing / "in").mkdir(parents=True)
    (landing / "in" / "old.csv").write_text("id,amount\n1,1\n")
    os.utime(landing / "in" / "old.csv", (os.path.getmtime(landing / "in" / "old.csv") - 120,) * 2)
    harness = Harness(tmp_path, instance, duckdb_url, str(landing), {"prefix": "in/"})
    first = harness.tick()
    (observation,) = first.asset_events
    assert observation.asset_key == AssetKey(["landing", "arrivals"])  # the input, upstream of the pipeline
    assert observation.metadata["etl/unprocessed_files"].value == 1
    assert observation.metadata["etl/oldest_unprocessed_file_seconds"].value >= 120
    assert observation.metadata["etl/last_seen_file"].value == str(landing / "in" / "old.csv")
    assert harness.tick().asset_events == []  # nothing changed within the minute: no observation per tick
    harness.run(first)
    cleared = harness.tick()  # the backlog changed: observed, so the plotted lag returns to zero
    assert cleared.asset_events[0].metadata["etl/unprocessed_files"].value == 0
    assert "oldest unprocessed file waits none" in cleared.skip_reason.skip_message
    assert harness.tick().asset_events == []
    (landing / "in" / "new.csv").write_text("id,amount\n2,1\n")
    (arrived,) = harness.tick().asset_events  # a new file: observed at once
    assert arrived.metadata["etl/last_seen_file"].value == str(landing / "in" / "new.csv")
    # While files wait, the growing lag is observed again once a minute.
    harness.cursor = json.dumps(
        {**json.loads(harness.cursor), "observed": {"seen": [str(landing / "in" / "new.csv"), 1], "at": 0}}
    )
    assert len(harness.tick().asset_events) == 1


def test_a_replace_pipeline_reads_every_file_in_one_run(tmp_path: Path, instance: DagsterInstance, duckdb_url: str) -> None:
    landing = tmp_path / "landing"
    (landing / "in").mkdir(parents=True)
    for i in (1, 2, 3):
        (landing / "in" / f"{i}.csv").write_text(f"id,amount\n{i},1\n")
    harness = Harness(
        tmp_path,
        instance,
        duckdb_url,
        str(landing),
        {"prefix": "in/", "max_files_per_run": 1},
        destination={"dataset": "raw.arrivals", "write": "replace"},
    )
    first = harness.tick()
    assert len(first.run_requests) == 1  # not three runs of one file each, each replacing the others
    assert harness.run(first) == [True]
    assert harness.published_ids() == [1, 2, 3]
    (landing / "in" / "2.csv").write_text("id,amount\n20,1\n")
    second = harness.tick()
    assert harness.run(second) == [True]
    assert harness.published_ids() == [1, 3, 20]  # the replaced content is every file's, changed or not


def test_files_that_publish_nothing_are_still_processed_once(tmp_path: Path, instance: DagsterInstance, duckdb_url: str) -> None:
    landing = tmp_path / "landing"
    (landing / "in").mkdir(parents=True)
    (landing / "in" / "empty.csv").write_text("id,amount\n")
    (landing / "in" / "data.csv").write_text("id,amount\n1,1\n")
    harness = Harness(tmp_path, instance, duckdb_url, str(landing), {"prefix": "in/", "pattern": "empty.csv"})
    assert harness.run(harness.tick()) == [True]
    assert harness.tick().run_requests == []  # the empty file is processed, not requested forever
    # A file touched without a change: a new version, whose content the load ledger has seen.
    second = Harness(tmp_path, instance, duckdb_url, str(landing), {"prefix": "in/", "pattern": "data.csv"})
    assert second.run(second.tick()) == [True]
    os.utime(landing / "in" / "data.csv")
    touched = second.tick()
    assert len(touched.run_requests) == 1 and second.run(touched) == [True]
    assert second.tick().run_requests == []
    assert second.published_ids() == [1]
