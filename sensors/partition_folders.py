"""Dynamic partitions: one sensor per pipeline with `partitions: {dynamic: ...}`.

Each tick lists the landing zone at the source path with `{partition}` as a wildcard
(etl_platform.engine.partition_folders), adds a partition key for every new sub-folder to the
pipeline's DynamicPartitionsDefinition, and requests a run of every folder's partition keyed by
folder and content fingerprint: a new folder, or a file added or replaced in one, loads that
partition once; a tick that sees the same content requests nothing new (Dagster skips a run key
it has seen). The partition's replace-partition publish makes a re-load replace only its slice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dagster import (
    AddDynamicPartitionsRequest,
    DefaultSensorStatus,
    ResourceParam,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from assets.partitions import dynamic_name
from etl_platform.breaker import BreakerBoard
from etl_platform.engine.partition_folders import partition_folders
from etl_platform.spec import PipelineSpec
from etl_platform.spec.partitions import folder_glob
from etl_platform.stores import FileLocation
from resources import LandingZoneResource

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition


def sensor_name(pipeline_id: str) -> str:
    return f"{pipeline_id}_partition_folders"


def partition_folders_sensor(spec: PipelineSpec, job: UnresolvedAssetJobDefinition) -> SensorDefinition:
    path = folder_glob(spec.file_path or "")

    @sensor(
        name=sensor_name(spec.id),
        job=job,
        minimum_interval_seconds=spec.partitions.dynamic.interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Adds a partition of pipeline {spec.id} per sub-folder of {path} and loads new or changed ones",
    )
    def _sensor(context: SensorEvaluationContext, landing_zone: LandingZoneResource, breakers: ResourceParam[BreakerBoard]):
        location = FileLocation.of(path, landing_zone.store(breakers), landing_zone.s3.get_client, breakers, landing_zone.roots())
        found = partition_folders(location)
        for folder in found.refused:
            context.log.warning(
                f"{location.store.file_url(location.prefix + folder)}: a partition key is letters, digits, '_', '.' "
                f"or '-' (at most 63); rename the folder to load it"
            )
        known = set(context.instance.get_dynamic_partitions(dynamic_name(spec.id)))
        new = [key for key in found.fingerprints if key not in known]
        requests = [
            RunRequest(run_key=f"{key}:{fingerprint}", partition_key=key, tags={"etl/trigger": "partition_folder"})
            for key, fingerprint in found.fingerprints.items()
        ]
        return SensorResult(
            run_requests=requests,
            dynamic_partitions_requests=[AddDynamicPartitionsRequest(dynamic_name(spec.id), new)] if new else [],
            skip_reason=None if requests else f"no sub-folder with files at {location.url}",
        )

    return _sensor
