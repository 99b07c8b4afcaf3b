"""Change data capture: one sensor per postgres_cdc pipeline, requesting a run when its slot is behind.

A tick reads only the slot's confirmed LSN and the server's WAL position (one catalog query, well
under the sensor time limit); it decodes nothing. Behind, and no run of this sensor unfinished,
it requests a run whose key names the slot and the LSN range seen, so a tick that sees the same
range again requests nothing new. The run opens its own connections in the step process and
applies one bounded window (docs/how-a-run-works.md, "Exactly once for change data capture");
on an idle slot that window is the heartbeat that lets the slot release WAL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dagster import (
    DefaultSensorStatus,
    ResourceParam,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from etl_platform.errors import one_line
from etl_platform.settings import Secrets
from etl_platform.sources.pgoutput import lsn_text
from etl_platform.sources.postgres_cdc import connect, slot_state
from etl_platform.sources.sql import expand_env
from etl_platform.spec import PipelineSpec
from sensors.runs import unfinished_run

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

INTERVAL_SECONDS = 30


def sensor_name(pipeline_id: str) -> str:
    return f"{pipeline_id}_change_capture"


def change_capture_sensor(spec: PipelineSpec, job: UnresolvedAssetJobDefinition) -> SensorDefinition:
    source = spec.source

    @sensor(
        name=sensor_name(spec.id),
        job=job,
        minimum_interval_seconds=INTERVAL_SECONDS,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Runs pipeline {spec.id} when replication slot {source.slot_name} is behind",
    )
    def _sensor(context: SensorEvaluationContext, secrets: ResourceParam[Secrets]):
        running = unfinished_run(context, job.name)
        if running:
            return SkipReason(f"run {running.run_id} is applying changes of slot {source.slot_name}")
        try:
            with connect(expand_env(source.url, secrets)) as connection:
                state = slot_state(connection, source.slot_name)
        except Exception as error:  # any driver error (or a missing variable): the source cannot be read now
            return SkipReason(f"cannot read slot {source.slot_name}: {one_line(error)}")
        if state is None:
            return RunRequest(run_key=f"{source.slot_name}:snapshot", tags={"etl/slot": source.slot_name})
        if state.lag_bytes == 0:
            return SkipReason(f"slot {source.slot_name} is at the server's WAL position")
        lsn_range = f"{lsn_text(state.confirmed_lsn)}..{lsn_text(state.current_lsn)}"
        context.log.info(f"slot {source.slot_name} is {state.lag_bytes} bytes behind ({lsn_range})")
        return RunRequest(
            run_key=f"{source.slot_name}:{lsn_range}",
            tags={"etl/slot": source.slot_name, "etl/lsn_range": lsn_range, "etl/lag_bytes": str(state.lag_bytes)},
        )

    return _sensor
