"""What pipeline assets tell Dagster: unchanged is not missing, runs that publish nothing keep the last
verdicts, file-triggered pipelines wait for files, and the landing zone is an asset of the graph.

Two small pipelines on DuckDB: `ref` (a reference table) and `facts`, which looks `ref` up.
Runs execute in process on a temporary instance; automation is evaluated with Dagster's own API.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest
import yaml
from dagster import (
    AssetCheckKey,
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    evaluate_automation_conditions,
    instance_for_test,
)
from dagster._core.definitions.asset_daemon_cursor import AssetDaemonCursor

from etl_platform.definitions import ALL_PIPELINES_JOB, build_definitions, job_name
from etl_platform.settings import Settings
from tests.conftest import rows

REF, FACTS, SUMMARY = AssetKey(["raw", "ref"]), AssetKey(["raw", "facts"]), AssetKey(["raw", "summary"])


class Project:
    """A pipelines folder, a landing folder and a DuckDB warehouse; `defs` is rebuilt after each change."""

    def __init__(self, tmp_path: Path, instance: DagsterInstance, facts_triggers: list | None = None):
        self.landing = tmp_path / "landing"
        (self.landing / "facts").mkdir(parents=True)
        self.pipelines = tmp_path / "pipelines"
        self.pipelines.mkdir()
        self.warehouse = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
        self.environ = {
            **os.environ,
            "ETL_PIPELINES_DIR": str(self.pipelines),
            "ETL_WAREHOUSE_URL": self.warehouse,
            "ETL_LANDING_DIR": str(self.landing),
            "ETL_LAKE_DIR": str(tmp_path / "lake"),
            "ETL_DBT_PROJECT_DIR": str(tmp_path / "no_dbt"),
        }
        self.instance = instance
        self.write("ref", source={"type": "csv", "path": "ref/*.csv"}, transforms=[{"cast": {"code": "int"}}])
        self.write(
            "facts",
            source={"type": "csv", **({} if facts_triggers else {"path": "facts/*.csv"})},
            transforms=[
                {"cast": {"id": "int", "code": "int", "amount": "float"}},
                {"lookup": {"dataset": "raw.ref", "on": "code", "columns": ["label"]}},
            ],
            triggers=facts_triggers or [],
            quality={
                "circuit_breaker": {"error_threshold": 40.0, "min_record_count": 2},
                "rules": [{"field": "amount", "rule": "Range", "args": [0, 1000], "name": "amount_in_range"}],
            },
        )

    def write(self, pipeline_id: str, **document) -> None:
        document = {"id": pipeline_id, "destination": {"dataset": f"raw.{pipeline_id}", "write": "append"}, **document}
        (self.pipelines / f"{pipeline_id}.yaml").write_text(yaml.safe_dump(document))

    def drop(self, folder: str, name: str, text: str) -> None:
        path = self.landing / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    @functools.cached_property
    def defs(self):
        return build_definitions(Settings.from_env(self.environ))

    def run(self, job: str = ALL_PIPELINES_JOB):
        return self.defs.resolve_job_def(job).execute_in_process(instance=self.instance, raise_on_error=False)

    def requested(self, cursor: AssetDaemonCursor | None) -> tuple[set[AssetKey], AssetDaemonCursor]:
        """The assets declarative automation would start now, and its cursor for the next evaluation."""
        result = evaluate_automation_conditions(self.defs, self.instance, cursor=cursor)
        return {
            key for key in self.defs.resolve_asset_graph().get_all_asset_keys() if result.get_num_requested(key)
        }, result.cursor

    def published(self, table: str) -> list[int]:
        return [r["id"] for r in rows(self.warehouse, f"SELECT id FROM {table} ORDER BY id")]


@pytest.fixture
def instance() -> DagsterInstance:
    with instance_for_test() as instance:
        yield instance


@pytest.fixture
def project(tmp_path: Path, instance: DagsterInstance) -> Project:
    project = Project(tmp_path, instance)
    project.drop("ref", "r1.csv", "code,label\n1,one\n2,two\n")
    project.drop("facts", "f1.csv", "id,code,amount\n1,1,10\n2,2,20\n")
    return project


def test_a_pipeline_with_new_input_loads_when_its_upstream_has_nothing_new(project: Project) -> None:
    first = project.run()
    assert first.success and project.published("raw.facts") == [1, 2]
    project.drop("facts", "f2.csv", "id,code,amount\n3,1,30\n")  # new input for facts only
    second = project.run()
    assert second.success
    assert not [e for e in second.all_events if e.event_type == DagsterEventType.STEP_SKIPPED]
    assert project.published("raw.facts") == [1, 2, 3]
    # ref was unchanged, not missing: recorded with the data version it had.
    (unchanged,) = [e for e in second.get_asset_materialization_events() if e.asset_key == REF]
    materialization = unchanged.step_materialization_data.materialization
    assert "no new or changed files" in materialization.metadata["etl/skipped"].value
    (published,) = [e for e in first.get_asset_materialization_events() if e.asset_key == REF]
    version = published.step_materialization_data.materialization.tags["dagster/data_version"]
    assert materialization.tags["dagster/data_version"] == version


def test_a_run_that_publishes_nothing_keeps_the_verdicts_dependents_are_judged_on(project: Project) -> None:
    project.write("summary", source={"type": "csv", "path": "summary/*.csv"}, dependencies=["facts", "ref"])
    project.drop("summary", "s1.csv", "id\n1\n")
    assert project.run().success
    _, cursor = project.requested(None)  # the first evaluation sets the baseline
    assert project.run(job_name("facts")).success  # nothing new: a no-op launch
    project.drop("facts", "bad.csv", "id,code\n9,1\n")  # no amount column: the run fails, nothing published
    assert not project.run(job_name("facts")).success
    project.drop("ref", "r2.csv", "code,label\n3,three\n")
    assert project.run(job_name("ref")).success
    started, cursor = project.requested(cursor)
    assert SUMMARY in started  # facts' published data passed its checks: neither run replaced that verdict

    (project.landing / "facts" / "bad.csv").unlink()  # as the dead-letter prefix would take it away
    project.drop("facts", "trip.csv", "id,code,amount\n10,1,5000\n11,1,6000\n12,1,7\n")  # 2 of 3 rows fail
    assert not project.run(job_name("facts")).success  # the breaker rejects the load
    project.drop("ref", "r3.csv", "code,label\n4,four\n")
    assert project.run(job_name("ref")).success
    started, cursor = project.requested(cursor)
    assert SUMMARY not in started  # the rejected load blocks its dependents...
    (project.landing / "facts" / "trip.csv").unlink()
    assert project.run(job_name("facts")).success  # ... a run with nothing new does not lift that...
    started, cursor = project.requested(cursor)
    assert SUMMARY not in started
    project.drop("facts", "f3.csv", "id,code,amount\n13,1,13\n")
    assert project.run(job_name("facts")).success  # ... a good load does
    started, _ = project.requested(cursor)
    assert SUMMARY in started
    breaker = project.instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [AssetCheckKey(FACTS, "circuit_breaker")]
    )[AssetCheckKey(FACTS, "circuit_breaker")]
    assert breaker.evaluation.passed


def test_a_file_triggered_pipeline_waits_for_files_not_for_its_lookups(tmp_path: Path, instance: DagsterInstance) -> None:
    arrival = {"prefix": "facts/", "pattern": "*.csv"}
    project = Project(tmp_path, instance, facts_triggers=[{"file_arrival": arrival}])
    project.drop("ref", "r1.csv", "code,label\n1,one\n")
    _, cursor = project.requested(None)
    assert project.run(job_name("ref")).success
    started, _ = project.requested(cursor)
    assert FACTS not in started  # its lookup published; no file arrived
    # Launched anyway with an empty inbox: a successful no-op that says why.
    empty = project.run(job_name("facts"))
    assert empty.success
    (skipped,) = [
        e.asset_observation_data.asset_observation.metadata["etl/skipped"].value
        for e in empty.all_events
        if e.event_type == DagsterEventType.ASSET_OBSERVATION
    ]
    assert skipped.startswith("no files waiting in")
    # Asked for in the spec: a changed lookup starts it too.
    asked = Project(tmp_path / "asked", instance, facts_triggers=[{"file_arrival": {**arrival, "on_upstream_update": True}}])
    _, cursor = asked.requested(None)
    asked.drop("ref", "r1.csv", "code,label\n1,one\n")
    assert asked.run(job_name("ref")).success
    started, _ = asked.requested(cursor)
    assert FACTS in started


def test_each_file_pipeline_has_its_landing_zone_upstream(project: Project) -> None:
    graph = project.defs.resolve_asset_graph()
    landing = AssetKey(["landing", "facts"])
    assert graph.get(FACTS).parent_keys == {REF, landing}
    node = graph.get(landing)
    assert not node.is_materializable and node.metadata["location"] == "facts/*.csv"
    assert graph.get(REF).parent_keys == {AssetKey(["landing", "ref"])}
