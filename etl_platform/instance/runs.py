"""Runs as the instance recorded them: recent runs, a run's root-cause error and its step logs.

`etl runs` and `etl logs` read these, so a failure can be understood without opening the UI: the
reason is the platform's own message when a step raised a Failure, else the innermost error.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from dagster import DagsterEventType, DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter

from etl_platform.tracing import Tracer, record_run_span

# The `etl/trigger` tag of the runs `etl run` executes itself (and so records the run spans of).
CLI_TRIGGER = "cli"


@dataclass(frozen=True)
class LogLine:
    """One event of a run's log, as `etl logs` prints it."""

    timestamp: float
    level: str
    step: str | None
    event: str | None
    message: str

    def text(self) -> str:
        when = datetime.datetime.fromtimestamp(self.timestamp, tz=datetime.UTC).strftime("%H:%M:%S")
        return f"{when} {self.level:<7} {self.step or '-':<28} {self.event or 'LOG':<22} {self.message}"


def root_cause(error) -> str:
    """The innermost error of a Dagster SerializableErrorInfo: the reason, not "Exceeded max_retries of 3"."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()


def find_run(instance: DagsterInstance, run_id: str) -> DagsterRun:
    """The run with this id or a unique prefix of it (the UI shows the first 8 characters)."""
    run = instance.get_run_by_id(run_id) if len(run_id) == 36 else None
    if run is not None:
        return run
    matches = [r for r in instance.get_runs(limit=1000) if r.run_id.startswith(run_id)]
    if len(matches) != 1:
        found = "no run" if not matches else f"{len(matches)} runs"
        raise LookupError(f"{found} with an id starting {run_id!r} in the instance; `etl runs` lists the recent ones")
    return matches[0]


def record_ended_run_span(tracer: Tracer, instance: DagsterInstance, run_id: str) -> None:
    """The run's own span (etl_platform/tracing.py, `record_run_span`), from the times the instance
    recorded, by whoever learns that the run ended: the daemon's sensor, or `etl run`."""
    record = instance.get_run_record_by_id(run_id)
    if record is None or record.start_time is None or record.end_time is None:
        return
    run = record.dagster_run
    succeeded = run.status == DagsterRunStatus.SUCCESS
    record_run_span(tracer, run_id, run.job_name, record.start_time, record.end_time, succeeded)


def recent_runs(instance: DagsterInstance, limit: int, failed_only: bool = False) -> list[DagsterRun]:
    filters = RunsFilter(statuses=[DagsterRunStatus.FAILURE]) if failed_only else None
    return list(instance.get_runs(filters=filters, limit=limit))


def failure_reasons(instance: DagsterInstance, run_id: str) -> list[tuple[str, str]]:
    """(step, reason) of each failed step, then the run's own failure when no step failed (a code location error)."""
    reasons: list[tuple[str, str]] = []
    run_failure = None
    for entry in instance.all_logs(run_id, of_type={DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE}):
        event = entry.dagster_event
        if event.event_type == DagsterEventType.STEP_FAILURE:
            failure = event.step_failure_data
            if failure.user_failure_data and failure.user_failure_data.description:
                reasons.append((event.step_key, failure.user_failure_data.description))
            else:
                reasons.append((event.step_key, root_cause(failure.error) if failure.error else "step failed"))
        elif event.event_specific_data is not None and event.event_specific_data.error is not None:
            run_failure = root_cause(event.event_specific_data.error)
    if not reasons and run_failure:
        reasons.append(("run", run_failure))
    return reasons


def run_logs(instance: DagsterInstance, run_id: str, step: str | None = None) -> list[LogLine]:
    """Every event of the run (or of one step), oldest first."""
    lines = []
    for entry in instance.all_logs(run_id):
        if step is not None and entry.step_key != step:
            continue
        event = entry.dagster_event.event_type.name if entry.dagster_event else None
        level = {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}.get(entry.level, str(entry.level))
        lines.append(LogLine(entry.timestamp, level, entry.step_key, event, " ".join(entry.message.split())))
    return lines
