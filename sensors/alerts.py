"""Alert sensors: a failed run and a failed blocking check of a pipeline with `alerts:` send one alert each.

Both read the Dagster instance from a cursor and advance it past what they sent, so a failure is
alerted once (docs/architecture.md, "Layers": what to send and how is etl_platform.alerts'). A
receiver that stays unreachable keeps the cursor where it is: the next tick sends the failure
again with the same idempotency key, which the receiver uses to drop a copy that did arrive. A
receiver that refuses an alert (4xx) is logged and passed over, since sending it again cannot help.

The check sensor alerts on failed checks of severity error (blocking rules, the circuit breaker,
an anomaly rate above its threshold, freshness); a run that published nothing reports its
checks' last verdicts again as warnings (assets.checks.carried_results), which are not new failures.
"""

from __future__ import annotations

from collections.abc import Mapping

from dagster import (
    AssetCheckKey,
    AssetCheckSeverity,
    DagsterEventType,
    DagsterRun,
    DefaultSensorStatus,
    ResourceParam,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from dagster._core.event_api import EventLogCursor
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecord, AssetCheckExecutionRecordStatus

from assets import dataset_key
from assets.checks import CARRIED_FROM
from assets.freshness import FRESHNESS_CHECK
from etl_platform.alerts import Alert, AlertDeliveryError, deliver
from etl_platform.quality.plan import plan_checks
from etl_platform.settings import Secrets
from etl_platform.spec import PipelineRegistry, PipelineSpec

RUN_FAILURE_SENSOR = "alert_on_run_failure"
CHECK_FAILURE_SENSOR = "alert_on_check_failure"
INTERVAL_SECONDS = 30
BATCH = 50


def alerting(registry: PipelineRegistry, event: str) -> dict[str, PipelineSpec]:
    return {spec.id: spec for spec in registry if spec.alerts is not None and event in spec.alerts.on}


def send(context: SensorEvaluationContext, spec: PipelineSpec, alert: Alert, secrets: Secrets) -> bool:
    """Send to every receiver; False when one was unreachable (try again next tick), True otherwise."""
    delivered = True
    for receiver in spec.alerts.receivers:
        try:
            deliver(alert, receiver, secrets)
        except AlertDeliveryError as exc:
            context.log.error(f"pipeline {spec.id}: {exc}")
            delivered = delivered and not exc.transient
    return delivered


def failure_detail(context: SensorEvaluationContext, run_id: str) -> str:
    """The first failed step's error message: the root cause `etl logs` shows too."""
    records = context.instance.get_records_for_run(run_id, of_type=DagsterEventType.STEP_FAILURE, limit=1).records
    if not records:
        return ""
    error = records[0].event_log_entry.dagster_event.step_failure_data.error
    return error.message.strip() if error else ""


def failed_pipelines(
    context: SensorEvaluationContext, run: DagsterRun | None, by_job: dict[str, PipelineSpec], by_step: dict[str, PipelineSpec]
) -> list[tuple[PipelineSpec, str]]:
    """The alerting pipelines a failed run failed, each with its root cause: the pipeline of the run's
    job, or, in a run of several pipelines (all_pipelines, `etl run a b`), each one whose step failed."""
    if run is None:
        return []
    if run.job_name in by_job:
        return [(by_job[run.job_name], failure_detail(context, run.run_id))]
    failed: dict[str, tuple[PipelineSpec, str]] = {}
    for record in context.instance.get_records_for_run(run.run_id, of_type=DagsterEventType.STEP_FAILURE).records:
        event = record.event_log_entry.dagster_event
        spec = by_step.get(event.step_key or "")
        if spec is not None and spec.id not in failed:
            error = event.step_failure_data.error
            failed[spec.id] = (spec, error.message.strip() if error else "")
    return list(failed.values())


def run_alert(spec: PipelineSpec, run_id: str, detail: str) -> Alert:
    return Alert(
        "run_failure", spec.id, run_id, run_id, f"pipeline {spec.id}: run failed", detail, dataset=spec.destination.dataset
    )


def run_failure_sensor(registry: PipelineRegistry, jobs: Mapping[str, str]) -> SensorDefinition:
    """`jobs`: each pipeline's job name, by pipeline id."""
    watched = alerting(registry, "run_failure").values()
    by_job = {jobs[spec.id]: spec for spec in watched}
    by_step = {dataset_key(spec.destination.dataset).to_python_identifier(): spec for spec in watched}

    @sensor(
        name=RUN_FAILURE_SENSOR,
        minimum_interval_seconds=INTERVAL_SECONDS,
        default_status=DefaultSensorStatus.RUNNING,
        description="Sends an alert for each failed run of a pipeline with `alerts: {on: [run_failure]}`",
    )
    def _sensor(context: SensorEvaluationContext, secrets: ResourceParam[Secrets]):
        cursor = context.cursor
        changes = context.instance.fetch_run_status_changes(DagsterEventType.RUN_FAILURE, BATCH, cursor, ascending=True)
        sent = 0
        for record in changes.records:
            run = context.instance.get_run_by_id(record.event_log_entry.run_id)
            alerts = [
                (spec, run_alert(spec, run.run_id, detail)) for spec, detail in failed_pipelines(context, run, by_job, by_step)
            ]
            # A receiver still unreachable keeps the cursor: the next tick sends this run's alerts again,
            # under the same idempotency keys.
            if not all([send(context, spec, alert, secrets) for spec, alert in alerts]):
                break
            sent += len(alerts)
            cursor = EventLogCursor.from_storage_id(record.storage_id).to_string()
        return SensorResult(cursor=cursor, skip_reason=None if sent else SkipReason("no new failed runs"))

    return _sensor


def check_alert(spec: PipelineSpec, record: AssetCheckExecutionRecord) -> Alert | None:
    """The alert for a check's latest execution: a new failure of severity error, else None."""
    evaluation = record.evaluation
    if record.status != AssetCheckExecutionRecordStatus.FAILED or evaluation is None:
        return None
    if evaluation.severity != AssetCheckSeverity.ERROR or CARRIED_FROM in evaluation.metadata:
        return None
    detail = evaluation.metadata.get("detail") or evaluation.metadata.get("rule") or evaluation.description
    return Alert(
        "check_failure",
        spec.id,
        record.run_id,
        str(record.id),
        f"pipeline {spec.id}: check {record.key.name} failed on {spec.destination.dataset}",
        str(getattr(detail, "value", detail) or ""),
        check=record.key.name,
        dataset=spec.destination.dataset,
    )


def check_failure_sensor(registry: PipelineRegistry) -> SensorDefinition:
    """Cursor: the highest check execution record id alerted on; only each check's latest execution is looked at."""
    watched = alerting(registry, "check_failure")

    @sensor(
        name=CHECK_FAILURE_SENSOR,
        minimum_interval_seconds=INTERVAL_SECONDS,
        default_status=DefaultSensorStatus.RUNNING,
        description="Sends an alert for each failed blocking check of a pipeline with `alerts: {on: [check_failure]}`",
    )
    def _sensor(context: SensorEvaluationContext, secrets: ResourceParam[Secrets]):
        seen = int(context.cursor or 0)
        newest = seen
        sent = 0
        for spec in watched.values():
            key = dataset_key(spec.destination.dataset)
            checks = [AssetCheckKey(key, check.name) for check in plan_checks(spec)]
            checks += [AssetCheckKey(key, FRESHNESS_CHECK)] if spec.freshness is not None else []
            latest = context.instance.event_log_storage.get_latest_asset_check_execution_by_key(checks)
            for record in sorted(latest.values(), key=lambda r: r.id):
                alert = check_alert(spec, record) if record.id > seen else None
                if alert is not None and not send(context, spec, alert, secrets):
                    return SensorResult(cursor=str(seen))
                sent += alert is not None
                newest = max(newest, record.id) if record.status != AssetCheckExecutionRecordStatus.PLANNED else newest
        return SensorResult(cursor=str(newest), skip_reason=None if sent else SkipReason("no new failed checks"))

    return _sensor


def alert_sensors(registry: PipelineRegistry, jobs: Mapping[str, str]) -> list[SensorDefinition]:
    """The alert sensors the pipelines ask for (none when no pipeline declares `alerts:`); `jobs` names each pipeline's job."""
    sensors = []
    if alerting(registry, "run_failure"):
        sensors.append(run_failure_sensor(registry, jobs))
    if alerting(registry, "check_failure"):
        sensors.append(check_failure_sensor(registry))
    return sensors
