"""Dynamic partitions: one partition per landing sub-folder, added by a sensor as folders appear.

The sensor adds a key for every new sub-folder and requests a run per folder keyed by folder and
content, so a folder loads once, and again (replacing only its slice) when its files change.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance, SensorResult, build_sensor_context, instance_for_test

from assets.partitions import dynamic_name
from etl_platform.definitions import build_definitions, job_name
from etl_platform.errors import SpecError
from etl_platform.settings import Settings
from etl_platform.spec.loader import load_pipeline_file
from sensors.partition_folders import sensor_name
from tests.conftest import rows, write_csv


def tenants(path: str = "tenants/{partition}/*.csv", source_type: str = "csv") -> dict:
    source = {"type": "csv", "path": path} if source_type == "csv" else {"type": "sql", "table": "src.orders"}
    return {
        "id": "orders",
        "source": source,
        "transforms": [{"cast": {"id": "int"}}],
        "destination": {"dataset": "raw.orders", "write": "replace"},
        "partitions": {"dynamic": {"per": "folder", "interval_seconds": 5}},
    }


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (tenants("tenants/{partition}.csv"), "put {partition} as a whole folder"),
        (tenants("*/{partition}/*.csv"), "must be literal"),
        (tenants(source_type="sql"), "a sql source takes `static:` keys"),
    ],
)
def test_a_dynamic_partition_is_a_whole_literal_sub_folder(tmp_path: Path, document: dict, message: str) -> None:
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    with pytest.raises(SpecError, match=message) as raised:
        load_pipeline_file(tmp_path / "p.yaml")
    assert "p.yaml:" in str(raised.value)


def tick(defs, instance: DagsterInstance) -> SensorResult:
    with build_sensor_context(instance=instance, sensor_name=sensor_name("orders"), resources=defs.resources) as context:
        result = defs.get_sensor_def(sensor_name("orders"))(context)
    for request in result.dynamic_partitions_requests:  # what the daemon does with them
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def test_a_new_or_changed_sub_folder_is_added_and_loaded_once(tmp_path: Path, duckdb_url: str) -> None:
    pipelines, landing = tmp_path / "pipelines", tmp_path / "landing"
    pipelines.mkdir()
    (pipelines / "orders.yaml").write_text(yaml.safe_dump(tenants()))
    write_csv(landing, "tenants/acme/a.csv", "id\n1\n2\n")
    write_csv(landing, "tenants/globex/a.csv", "id\n3\n")
    write_csv(landing, "tenants/bad name/a.csv", "id\n9\n")
    environ = {
        **os.environ,
        "ETL_PIPELINES_DIR": str(pipelines),
        "ETL_WAREHOUSE_URL": duckdb_url,
        "ETL_LANDING_DIR": str(landing),
        "ETL_LAKE_DIR": str(tmp_path / "lake"),
    }
    defs = build_definitions(Settings.from_env(environ), with_dbt=False)
    job = defs.resolve_job_def(job_name("orders"))
    with instance_for_test() as instance:
        first = tick(defs, instance)
        assert instance.get_dynamic_partitions(dynamic_name("orders")) == ["acme", "globex"]
        assert [r.partition_key for r in first.run_requests] == ["acme", "globex"]
        for request in first.run_requests:
            tags = {**request.tags, "dagster/run_key": request.run_key}
            assert job.execute_in_process(instance=instance, partition_key=request.partition_key, tags=tags).success

        def published() -> dict[str, list[int]]:
            found = rows(duckdb_url, "SELECT _etl_partition AS p, id FROM raw.orders ORDER BY 1, 2")
            return {key: [r["id"] for r in found if r["p"] == key] for key in sorted({r["p"] for r in found})}

        assert published() == {"acme": [1, 2], "globex": [3]}
        assert [r.run_key for r in tick(defs, instance).run_requests] == [r.run_key for r in first.run_requests]

        write_csv(landing, "tenants/acme/b.csv", "id\n4\n")
        write_csv(landing, "tenants/initech/a.csv", "id\n5\n")
        second = tick(defs, instance)
        changed = [r for r in second.run_requests if r.run_key not in {f.run_key for f in first.run_requests}]
        assert [r.partition_key for r in changed] == ["acme", "initech"]
        assert instance.get_dynamic_partitions(dynamic_name("orders")) == ["acme", "globex", "initech"]
        for request in changed:
            assert job.execute_in_process(instance=instance, partition_key=request.partition_key).success
        assert published() == {"acme": [1, 2, 4], "globex": [3], "initech": [5]}
