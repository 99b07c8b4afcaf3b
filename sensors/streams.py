"""Stream pipelines: one sensor per pipeline with a `type: stream` source.

A tick reads only positions: the pipeline's saved position (the warehouse) and the stream's head and
backlog (the broker, without consuming: sources.streams.stream_backlog), well under the sensor time
limit. When messages wait and no run of the pipeline is in flight, it requests one run for the range
from the saved position (up to `max_messages` of it), with the run key made of the pipeline, the saved
position and the head, so a range is requested once. The run opens the broker's client in its own step
process, reads that micro-batch and publishes it (docs/how-a-run-works.md, "Exactly once for streams").
"""

from __future__ import annotations

import hashlib
import json
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

from etl_platform.breaker import BreakerBoard
from etl_platform.errors import EtlError
from etl_platform.settings import Secrets
from etl_platform.sources.streams import stream_backlog
from etl_platform.spec import PipelineSpec
from etl_platform.state import saved_position
from resources import WarehouseResource
from sensors.runs import unfinished_run

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

STREAM_SENSOR_INTERVAL_SECONDS = 30


def stream_sensor_name(pipeline_id: str) -> str:
    return f"{pipeline_id}_stream"


def range_run_key(pipeline_id: str, saved: object, head: str) -> str:
    """The range's name: from the saved position to the head; the same range is never requested twice."""
    start = hashlib.sha256(json.dumps(saved, sort_keys=True).encode()).hexdigest()[:12]
    return f"{pipeline_id}:{start}:{head}"


def stream_sensor(spec: PipelineSpec, job: UnresolvedAssetJobDefinition) -> SensorDefinition:
    source = spec.source

    @sensor(
        name=stream_sensor_name(spec.id),
        job=job,
        minimum_interval_seconds=STREAM_SENSOR_INTERVAL_SECONDS,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Runs pipeline {spec.id} when messages wait in {source.broker} {source.name}",
    )
    def _sensor(
        context: SensorEvaluationContext,
        warehouse: WarehouseResource,
        breakers: ResourceParam[BreakerBoard],
        secrets: ResourceParam[Secrets],
    ):
        if unfinished_run(context, job.name):
            return SkipReason(f"a run of {spec.id} is reading the stream")  # one run per stream at a time
        try:
            with warehouse.platform_tables(breakers) as store:
                saved = saved_position(store, spec.id)
            head, waiting = stream_backlog(source, secrets, saved)
        except EtlError as exc:
            return SkipReason(f"cannot read the stream's positions: {exc}")
        if not waiting:
            return SkipReason(f"no messages wait in {source.broker} {source.name}")
        context.log.info(f"{spec.id}: {waiting:,} message(s) wait in {source.broker} {source.name} (head {head})")
        return RunRequest(run_key=range_run_key(spec.id, saved, head), tags={"etl/stream_backlog": str(waiting)})

    return _sensor
