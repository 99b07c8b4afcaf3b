"""The composition root: the one place that joins the engine with the Dagster layer.

`defs` is what workspace.yaml, `dagster dev` and `dagster job launch` load: a lazy definitions
function (Dagster's `@definitions`), so importing this module reads no pipeline file and runs no
dbt parse; Dagster calls it when it loads the code location. It is built from the environment
(Settings), so the same code serves the embedded default and production; a pipeline file with an
error fails the code location load with the file and line.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dagster import (
    AssetChecksDefinition,
    AssetKey,
    AssetsDefinition,
    AssetSelection,
    AssetSpec,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    Definitions,
    SensorDefinition,
    define_asset_job,
    definitions,
    in_process_executor,
    multi_or_in_process_executor,
)
from dagster_aws.s3 import S3Resource

from assets import dataset_key, pipeline_asset
from assets.freshness import freshness_checks, freshness_sensor
from assets.landing import landing_assets
from assets.workers import executor_for
from etl_platform.breaker import BreakerBoard
from etl_platform.errors import install_log_redaction
from etl_platform.logs import install_log_format
from etl_platform.settings import Settings
from etl_platform.spec import PipelineRegistry, PipelineSpec
from etl_platform.spec.sources import CHANGE_CAPTURE_TYPES
from etl_platform.stores import AllowedRoots
from etl_platform.tracing import Tracer, otlp_tracer
from resources import EmbeddingModelResource, LandingZoneResource, WarehouseResource
from sensors import (
    alert_sensors,
    change_capture_sensor,
    dbt_schedule,
    file_arrival_sensor,
    partition_folders_sensor,
    pipeline_schedules,
    run_span_sensors,
    stream_sensor,
)

ALL_PIPELINES_JOB = "all_pipelines"
DBT_JOB = "dbt_models_job"
# How often declarative automation looks for updated upstream datasets (Dagster's default is 30 s).
AUTOMATION_INTERVAL_SECONDS = 10


def job_name(pipeline_id: str) -> str:
    return f"{pipeline_id}_job"


def webhook_assets(registry: PipelineRegistry) -> list[AssetSpec]:
    """External datasets that outside systems report changes of (POST report_asset_materialization)."""
    datasets = sorted({dataset for spec in registry for dataset in spec.webhook_datasets})
    return [
        AssetSpec(
            dataset_key(dataset),
            group_name="external",
            kinds={"webhook"},
            description=f"Maintained outside the platform; report a change with a POST to "
            f"/report_asset_materialization/{dataset.replace('.', '/')}",
        )
        for dataset in datasets
    ]


def dbt_layer(settings: Settings, reported: list[AssetKey]) -> tuple[AssetsDefinition | None, dict]:
    """The dbt models (None without a usable dbt project) and the resource that builds them.

    Imported here: dagster-dbt and dbt take seconds to import, which a process that runs no dbt
    step (`etl run` of pipelines) does not pay.
    """
    from assets.dbt import dbt_models, dbt_resource

    models = dbt_models(settings.dbt_project_dir, settings.warehouse_url, settings.subprocess_environment(), reported)
    return models, ({"dbt": dbt_resource(settings.dbt_project_dir)} if models else {})


def monitoring(registry: PipelineRegistry, jobs: dict) -> tuple[list[AssetChecksDefinition], list[SensorDefinition]]:
    """The pipelines' freshness checks, and the sensors that evaluate them and alert on failures."""
    checks = freshness_checks(registry)
    return checks, [*alert_sensors(registry, {pid: job.name for pid, job in jobs.items()}), *freshness_sensor(checks)]


def pipeline_jobs(
    registry: PipelineRegistry, models: AssetsDefinition | None, celery_workers: bool
) -> tuple[dict[str, Any], list[Any], Any]:
    """A job per pipeline, the dbt job (when there are models) and `all_pipelines`, each with its
    local executor, or all on the celery workers (assets/workers.py). (`define_asset_job`'s type is not
    exported by dagster, hence `Any`.)"""
    # One step per pipeline job: spawning a process for it would only add start-up time.
    jobs = {
        spec.id: define_asset_job(
            job_name(spec.id),
            selection=AssetSelection.assets(dataset_key(spec.destination.dataset)),
            executor_def=executor_for(celery_workers, in_process_executor),
            description=f"Materialize {spec.destination.dataset} (pipeline {spec.id})",
        )
        for spec in registry
    }
    # One step (dbt build) for every model and test; dbt itself orders them.
    dbt_jobs = (
        [
            define_asset_job(
                DBT_JOB,
                selection=AssetSelection.assets(models),
                executor_def=executor_for(celery_workers, in_process_executor),
                description="Build every dbt model and run its tests",
            )
        ]
        if models
        else []
    )
    # Many steps: run independent pipelines in parallel processes; `etl run` may pick in_process.
    everything = define_asset_job(
        ALL_PIPELINES_JOB,
        # Partitioned pipelines load per partition (`etl backfill`), not in a run of everything.
        selection=AssetSelection.assets(*[dataset_key(s.destination.dataset) for s in registry if s.partitions is None]),
        executor_def=executor_for(celery_workers, multi_or_in_process_executor),
        # Two local processes; on celery workers, the queues' worker counts set the parallelism.
        config=None if celery_workers else {"execution": {"config": {"multiprocess": {"max_concurrent": 2}}}},
        description="Every pipeline, in dependency order (dbt_models_job builds the models on them)",
    )
    return jobs, dbt_jobs, everything


def build_definitions(
    settings: Settings | None = None,
    python_pipelines: Iterable[PipelineSpec] = (),
    with_dbt: bool = True,
    tracer: Tracer | None = None,
) -> Definitions:
    """Assets, jobs, schedules, sensors and resources for every pipeline in the pipelines folder,
    and the dbt models on them unless `with_dbt` is False (a process that runs only pipeline jobs).

    Plain objects are resources too: `breakers`, the process's one BreakerBoard (steps and sensors share
    it), `secrets`, the settings' named secrets, `tracer` (a test's, else OTLP if configured, else no-op).
    """
    settings = settings or Settings.from_env()
    install_log_redaction()
    install_log_format(settings.log_format)
    roots = AllowedRoots.of(settings.landing, settings.allowed_roots)
    registry = PipelineRegistry.from_folder(settings.pipelines_dir, python_pipelines, roots)
    s3 = S3Resource(endpoint_url=settings.s3_endpoint_url, max_attempts=5)
    warehouse = WarehouseResource.at(settings.warehouse_url, settings.lake, s3, settings.secrets)
    assets = [pipeline_asset(spec, registry, warehouse.kind) for spec in registry]
    reported = [spec.key for spec in webhook_assets(registry)]
    models, dbt = dbt_layer(settings, reported) if with_dbt else (None, {})
    jobs, dbt_jobs, everything = pipeline_jobs(registry, models, settings.celery_workers)
    automation = AutomationConditionSensorDefinition(
        "dataset_updated",
        target=AssetSelection.all(),
        minimum_interval_seconds=AUTOMATION_INTERVAL_SECONDS,
        default_status=DefaultSensorStatus.RUNNING,
        description="Runs pipelines and dbt models whose upstream datasets were updated (DatasetUpdated and webhook triggers)",
    )
    arrivals = [file_arrival_sensor(spec, jobs[spec.id]) for spec in registry if spec.file_arrival]
    arrivals += [change_capture_sensor(spec, jobs[spec.id]) for spec in registry if spec.source.type in CHANGE_CAPTURE_TYPES]
    streams = [stream_sensor(spec, jobs[spec.id]) for spec in registry if spec.source.type == "stream"]
    folders = [partition_folders_sensor(s, jobs[s.id]) for s in registry if s.partitions and s.partitions.dynamic]
    freshness, monitors = monitoring(registry, jobs)
    traced = tracer is not None or settings.traces_endpoint is not None
    return Definitions(
        assets=[*assets, *([models] if models else []), *webhook_assets(registry), *landing_assets(registry)],
        jobs=[*jobs.values(), *dbt_jobs, everything],
        schedules=[*pipeline_schedules(registry, jobs), *map(dbt_schedule, dbt_jobs)],
        asset_checks=freshness,
        sensors=[automation, *arrivals, *streams, *folders, *monitors, *(run_span_sensors() if traced else [])],
        resources={
            "warehouse": warehouse,
            "landing_zone": LandingZoneResource(root=settings.landing, allowed_roots=list(roots.declared), s3=s3),
            "s3": s3,
            "embedding_model": EmbeddingModelResource(),
            **dbt,
            "breakers": BreakerBoard(settings.breakers),
            "secrets": settings.secrets,
            "tracer": tracer or otlp_tracer(settings.traces_endpoint),
        },
    )


@definitions
def defs() -> Definitions:
    """The code location, built when Dagster loads it (not on import)."""
    return build_definitions(Settings.from_env())
