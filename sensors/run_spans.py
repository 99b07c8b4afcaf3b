"""The run's own span in its trace: recorded by the daemon when a run of the code location ends.

Step spans name the run's span as their parent by its derived id (etl_platform/tracing.py), but no
process lives for the whole run to record it; a run-status sensor learns that the run ended, with
its start and end times, and records it then (docs/operations.md, "Traces"). Defined only when
traces are on.
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

from etl_platform.tracing import Tracer, record_run_span


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
        run = context.dagster_run
        record = context.instance.get_run_record_by_id(run.run_id)
        if record is None or record.start_time is None or record.end_time is None:
            return
        record_run_span(tracer, run.run_id, run.job_name, record.start_time, record.end_time, status == DagsterRunStatus.SUCCESS)

    return _sensor
