"""The run's own span in its trace: recorded by the daemon when a run of the code location ends.

Step spans name the run's span as their parent by its derived id (etl_platform/tracing.py), but no
process lives for the whole run to record it; a run-status sensor learns that the run ended, with
its start and end times, and records it then (docs/operations.md, "Traces"). A run `etl run`
executed is left to `etl run`, which records its span itself (one root per trace, daemon or not).
Defined only when traces are on.
"""

from __future__ import annotations

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    ResourceParam,
    RunStatusSensorContext,
    SensorDefinition,
    run_status_sensor,
)

from etl_platform.instance.runs import CLI_TRIGGER, record_ended_run_span
from etl_platform.tracing import Tracer


def run_span_sensors() -> list[SensorDefinition]:
    """One sensor per final status a run span records: succeeded, failed."""
    return [_run_span_sensor(status) for status in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE)]


def _run_span_sensor(status: DagsterRunStatus) -> SensorDefinition:
    @run_status_sensor(
        run_status=status,
        name=f"run_spans_{status.value.lower()}",
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Records the trace span of each run that ends with {status.value}",
    )
    def _sensor(context: RunStatusSensorContext, tracer: ResourceParam[Tracer]) -> None:
        if context.dagster_run.tags.get("etl/trigger") != CLI_TRIGGER:
            record_ended_run_span(tracer, context.instance, context.dagster_run.run_id)

    return _sensor
