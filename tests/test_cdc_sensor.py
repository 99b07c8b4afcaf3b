"""The change-capture sensor: it reads only positions (the slot's; the saved GTID and the binlog's),
and the run it requests applies the changes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance, SensorResult, SkipReason, build_sensor_context, instance_for_test

from etl_platform.definitions import build_definitions, job_name
from etl_platform.settings import Settings
from sensors.change_capture import sensor_name
from tests.cdc_support import CdcSource, cdc_source, mariadb_cdc_source, target_rows


@pytest.fixture
def source() -> Iterator[CdcSource]:
    with cdc_source() as created:
        yield created


def tick(defs, instance: DagsterInstance) -> SensorResult | object:
    name = sensor_name("items_cdc")
    with build_sensor_context(instance=instance, sensor_name=name, resources=defs.resources) as context:
        return defs.get_sensor_def(name)(context)


def launch(defs, instance: DagsterInstance, request) -> bool:
    job = defs.resolve_job_def(job_name("items_cdc"))
    tags = {**request.tags, "dagster/sensor_name": sensor_name("items_cdc"), "dagster/run_key": request.run_key}
    return job.execute_in_process(instance=instance, tags=tags, raise_on_error=False).success


def test_the_sensor_requests_a_run_per_slot_range_and_the_run_applies_it(
    source: CdcSource, postgresql_url: str, tmp_path: Path
) -> None:
    document = {
        "id": "items_cdc",
        "source": {
            "type": "postgres_cdc",
            "url": "${ITEMS_DB_URL}",
            "table": "src.items",
            "slot": source.slot,
            "publication": source.publication,
        },
        "destination": {"dataset": "analytics.items", "write": "merge", "primary_key": ["id"]},
    }
    defs = definitions(document, tmp_path, postgresql_url, source.url)
    source.sql("INSERT INTO src.items VALUES (1, 'a'), (2, 'b')")
    with instance_for_test() as instance:
        first = tick(defs, instance)
        assert first.run_key == f"{source.slot}:snapshot"
        assert launch(defs, instance, first)
        assert target_rows(postgresql_url) == source.rows()
        source.sql("UPDATE src.items SET name = 'c' WHERE id = 1", "DELETE FROM src.items WHERE id = 2")
        behind = tick(defs, instance)
        assert behind.run_key.startswith(f"{source.slot}:") and int(behind.tags["etl/lag_bytes"]) > 0
        assert launch(defs, instance, behind)
        assert target_rows(postgresql_url) == source.rows()


def definitions(document: dict, tmp_path: Path, warehouse_url: str, source_url: str):
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    (pipelines / "items.yaml").write_text(yaml.safe_dump(document))
    environ = {
        **os.environ,
        "ETL_PIPELINES_DIR": str(pipelines),
        "ETL_WAREHOUSE_URL": warehouse_url,
        "ETL_LANDING_DIR": str(tmp_path / "landing"),
        "ETL_LAKE_DIR": str(tmp_path / "lake"),
        "ITEMS_DB_URL": source_url,
    }
    return build_definitions(Settings.from_env(environ), with_dbt=False)


def test_the_sensor_compares_the_saved_gtid_with_the_binlog_and_the_run_applies_the_changes(
    postgresql_url: str, tmp_path: Path
) -> None:
    with mariadb_cdc_source() as source:
        document = {
            "id": "items_cdc",
            "source": {"type": "mariadb_cdc", "url": "${ITEMS_DB_URL}", "table": f"{source.database}.items"},
            "destination": {"dataset": "analytics.items", "write": "merge", "primary_key": ["id"]},
        }
        defs = definitions(document, tmp_path, postgresql_url, source.url)
        source.sql("INSERT INTO items (id, name) VALUES (1, 'a'), (2, 'b')")
        stream = f"binlog:{source.database}.items"
        with instance_for_test() as instance:
            first = tick(defs, instance)
            assert first.run_key == f"{stream}:snapshot"
            assert launch(defs, instance, first)
            assert target_rows(postgresql_url) == source.rows()
            idle = tick(defs, instance)
            assert isinstance(idle, SkipReason) and "at the server's position" in idle.skip_message
            source.sql("UPDATE items SET name = 'c' WHERE id = 1", "DELETE FROM items WHERE id = 2")
            behind = tick(defs, instance)
            assert behind.run_key.startswith(f"{stream}:") and int(behind.tags["etl/lag_transactions"]) == 2
            assert launch(defs, instance, behind)
            assert target_rows(postgresql_url) == source.rows()
