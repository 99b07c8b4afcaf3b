"""`etl run`: materialize pipelines (and the dbt models) through Dagster, so every run is in the instance and the UI."""

from __future__ import annotations

import threading
import uuid

from dagster import AssetKey, DagsterInstance, build_reconstructable_job, execute_job
from rich.console import Console

from etl_platform.cli.progress import PipelineStatus, RunFollower, checks_table, follow, models_table, summary_table
from etl_platform.spec import PipelineSpec

# The terminal shows progress bars and a summary; Dagster's own step log stays in the instance (and the UI).
QUIET_CONSOLE = {"console": {"config": {"log_level": "CRITICAL"}}}


def pipeline_job(job: str):
    """Reconstruct a job of the composition root by name (Dagster calls this in step processes)."""
    from etl_platform.definitions import defs

    return defs.resolve_job_def(job)


def dbt_model_statuses() -> list[PipelineStatus]:
    """One status per dbt model, in the order dbt builds them, all of the one dbt step."""
    from assets.dbt import DBT_ASSETS_NAME
    from etl_platform.definitions import defs

    graph = defs.resolve_asset_graph()
    models = [
        key
        for key in graph.toposorted_asset_keys
        if graph.get(key).is_executable and graph.get(key).assets_def.node_def.name == DBT_ASSETS_NAME
    ]
    return [PipelineStatus(key.path[-1], ".".join(key.path), DBT_ASSETS_NAME, kind="dbt") for key in models]


def run_through_dagster(
    specs: list[PipelineSpec], parallel: int, console: Console, full_refresh: bool = False, with_dbt: bool = False
) -> tuple[bool, list[PipelineStatus]]:
    """Launch one run for `specs` (then the dbt models, `with_dbt`) in the instance at DAGSTER_HOME, follow it,
    print its summary; return success and every asset's status."""
    from assets import dataset_key
    from etl_platform.definitions import ALL_PIPELINES_JOB, job_name

    statuses = [
        PipelineStatus(s.id, s.destination.dataset, dataset_key(s.destination.dataset).to_python_identifier()) for s in specs
    ]
    statuses += dbt_model_statuses() if with_dbt else []
    single = len(statuses) == 1
    job = build_reconstructable_job(__name__, "pipeline_job", (job_name(specs[0].id) if single else ALL_PIPELINES_JOB,))
    keys = [AssetKey(status.dataset.split(".")) for status in statuses]
    executor = {"multiprocess": {"max_concurrent": parallel}} if parallel > 1 else {"in_process": {}}
    invocation = uuid.uuid4().hex
    instance = DagsterInstance.get()
    outcome: dict = {}

    def work() -> None:
        result = execute_job(
            job,
            instance,
            run_config={
                "loggers": QUIET_CONSOLE,
                **({} if single else {"execution": {"config": executor}}),
                **(
                    {
                        "ops": {
                            dataset_key(s.destination.dataset).to_python_identifier(): {"config": {"full_refresh": True}}
                            for s in specs
                        }
                    }
                    if full_refresh
                    else {}
                ),
            },
            tags={"etl/invocation": invocation, "etl/trigger": "cli", **({"etl/full_refresh": "true"} if full_refresh else {})},
            asset_selection=None if single else keys,
        )
        outcome["success"] = result.success

    worker = threading.Thread(target=work, name="dagster-run")
    worker.start()
    follow(worker, RunFollower(instance, invocation, statuses), console)
    worker.join()
    pipelines = [s for s in statuses if s.kind == "pipeline"]
    models = [s for s in statuses if s.kind == "dbt"]
    if pipelines:
        console.print(summary_table(pipelines))
    if models:
        console.print(models_table(models))
    checks = checks_table(statuses)
    if checks is not None:
        console.print(checks)
    return bool(outcome.get("success")), statuses


__all__ = ["pipeline_job", "run_through_dagster"]
