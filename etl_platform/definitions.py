"""The composition root: the one place that joins the engine with the Dagster layer.

`defs` is what workspace.yaml, `dagster dev`, `dagster job launch` and `etl run` load. It is
built from the environment (Settings), so the same code serves the embedded default and
production; a pipeline file with an error fails the code location load with the file and line.
"""

from __future__ import annotations

from collections.abc import Iterable

from dagster import AssetSelection, Definitions, define_asset_job, in_process_executor, multi_or_in_process_executor

from assets import dataset_key, pipeline_asset
from etl_platform.settings import Settings
from etl_platform.spec import PipelineRegistry, PipelineSpec
from resources import LandingZoneResource, WarehouseResource
from sensors import pipeline_schedules

ALL_PIPELINES_JOB = "all_pipelines"


def job_name(pipeline_id: str) -> str:
    return f"{pipeline_id}_job"


def build_definitions(settings: Settings | None = None, python_pipelines: Iterable[PipelineSpec] = ()) -> Definitions:
    """Assets, jobs, schedules and resources for every pipeline in the pipelines folder."""
    settings = settings or Settings.from_env()
    registry = PipelineRegistry.from_folder(settings.pipelines_dir, python_pipelines)
    warehouse = WarehouseResource(url=settings.warehouse_url, lake_dir=str(settings.lake_dir))
    assets = [pipeline_asset(spec, registry, warehouse.kind) for spec in registry]
    # One step per pipeline job: spawning a process for it would only add start-up time.
    jobs = {
        spec.id: define_asset_job(
            job_name(spec.id),
            selection=AssetSelection.assets(dataset_key(spec.destination.dataset)),
            executor_def=in_process_executor,
            description=f"Materialize {spec.destination.dataset} (pipeline {spec.id})",
        )
        for spec in registry
    }
    # Many steps: run independent pipelines in parallel processes; `etl run` may pick in_process.
    everything = define_asset_job(
        ALL_PIPELINES_JOB,
        selection=AssetSelection.assets(*[dataset_key(s.destination.dataset) for s in registry]),
        executor_def=multi_or_in_process_executor,
        config={"execution": {"config": {"multiprocess": {"max_concurrent": 2}}}},
        description="Every pipeline, in dependency order",
    )
    return Definitions(
        assets=assets,
        jobs=[*jobs.values(), everything],
        schedules=pipeline_schedules(registry, jobs),
        resources={"warehouse": warehouse, "landing_zone": LandingZoneResource(root=str(settings.landing_dir))},
    )


defs = build_definitions()
