"""Follow a Dagster run through its event log: a progress bar per pipeline, then a summary.

`etl run` executes through Dagster, so steps may run in other processes; the event log is the
one place that sees all of them. Each pipeline asset reports its progress as an asset observation
(see assets.factory.progress_observation), whose metadata is read back here.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from dagster import DagsterEventType, DagsterInstance, RunsFilter
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from assets.checks import CARRIED_FROM
from assets.factory import BYTES_READ, ROWS_READ, SKIPPED, TOTAL_BYTES
from etl_platform.instance.metadata import plain_values
from etl_platform.instance.runs import root_cause

_ASSET_EVENTS = {
    DagsterEventType.ASSET_MATERIALIZATION,
    DagsterEventType.ASSET_CHECK_EVALUATION,
    DagsterEventType.ASSET_OBSERVATION,
}


@dataclass
class AssetStatus:
    """What the run did to one asset: a pipeline's dataset, or a dbt model (several share one dbt step)."""

    name: str  # the pipeline id, or the dbt model's name
    dataset: str
    step_key: str
    kind: str = "pipeline"
    state: str = "waiting"
    rows_read: int = 0
    percent: int | None = None
    metadata: dict = field(default_factory=dict)
    error: str | None = None
    checks: list[CheckStatus] = field(default_factory=list)


@dataclass(frozen=True)
class CheckStatus:
    name: str
    passed: bool
    severity: str
    rows_failing: int | None
    detail: str


class RunFollower:
    """Polls the instance for the run tagged `invocation` and updates each asset's AssetStatus.

    Step events (start, success, failure) apply to every asset of the step; materializations,
    check evaluations and progress observations to the asset they name.
    """

    def __init__(self, instance: DagsterInstance, invocation: str, statuses: list[AssetStatus]):
        self.instance = instance
        self.invocation = invocation
        self.statuses = statuses
        self._by_step: dict[str, list[AssetStatus]] = {}
        for status in statuses:
            self._by_step.setdefault(status.step_key, []).append(status)
        self._by_dataset = {status.dataset: status for status in statuses}
        self.run_id: str | None = None
        self._seen = 0

    def poll(self) -> None:
        if self.run_id is None:
            records = self.instance.get_run_records(RunsFilter(tags={"etl/invocation": self.invocation}), limit=1)
            if not records:
                return
            self.run_id = records[0].dagster_run.run_id
        logs = self.instance.all_logs(self.run_id)
        for entry in logs[self._seen :]:
            if entry.dagster_event is not None and entry.dagster_event.event_type == DagsterEventType.RUN_FAILURE:
                self._apply_run_failure(entry.dagster_event)
            step = self._by_step.get(entry.step_key or "", [])
            # A dbt step that fails after building some models: dbt skipped the others (they were not lost).
            partly_built = any(status.state == "done" for status in step)
            for status in step:
                self._apply_step_entry(status, entry, partly_built)
            event = entry.dagster_event
            if event is None or event.event_type not in _ASSET_EVENTS:
                continue
            checked = event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION
            key = event.event_specific_data.asset_key if checked else event.asset_key
            status = self._by_dataset.get(".".join(key.path))
            if status is None:
                continue
            if event.event_type == DagsterEventType.ASSET_OBSERVATION:
                self._apply_observation(status, plain_values(event.asset_observation_data.asset_observation.metadata))
            elif checked:
                evaluation = event.event_specific_data
                meta = plain_values(evaluation.metadata)
                if CARRIED_FROM in meta:
                    continue  # an earlier run's verdict, reported again: not judged in this run
                status.checks.append(
                    CheckStatus(
                        evaluation.check_name,
                        evaluation.passed,
                        evaluation.severity.value.lower(),
                        meta.get("rows_failing", meta.get("dagster_dbt/failed_row_count")),
                        meta.get("detail") or meta.get("rule", ""),
                    )
                )
            else:
                status.state = "done"
                status.metadata = plain_values(event.step_materialization_data.materialization.metadata)
                status.rows_read = status.metadata.get("rows_read", status.rows_read)
                if SKIPPED in status.metadata:  # the dataset is unchanged (assets.factory.unchanged)
                    status.metadata["skipped"] = status.metadata[SKIPPED]
        self._seen = len(logs)

    def _apply_run_failure(self, event) -> None:
        """A run that failed outside any step (its code location, a resource): every unfinished asset
        failed, with the run's error, so no pipeline fails without a reason."""
        error = event.event_specific_data.error if event.event_specific_data else None
        if error is None:
            return  # a step failed: its own failure event named the reason
        message = root_cause(error)
        for status in self.statuses:
            if status.state in {"waiting", "running", "retrying"}:
                status.state, status.error = "failed", message

    @staticmethod
    def _apply_observation(status: AssetStatus, metadata: dict) -> None:
        """The asset's own observations (assets.factory): why a never-published dataset is still missing, or progress."""
        if SKIPPED in metadata:
            status.metadata["skipped"] = metadata[SKIPPED]
        if ROWS_READ not in metadata:
            return  # not a progress observation
        status.rows_read = metadata[ROWS_READ]
        total = metadata.get(TOTAL_BYTES)
        status.percent = min(100, round(100 * metadata[BYTES_READ] / total)) if total else None

    @staticmethod
    def _apply_step_entry(status: AssetStatus, entry, partly_built: bool) -> None:
        event = entry.dagster_event
        if event is None:
            return
        if event.event_type == DagsterEventType.STEP_FAILURE:
            if status.state != "done":
                status.state = "skipped" if partly_built else "failed"
            failure = event.step_failure_data
            if failure.user_failure_data and failure.user_failure_data.description:
                status.error = failure.user_failure_data.description  # the platform's own message
                status.metadata = {**status.metadata, **plain_values(failure.user_failure_data.metadata)}
            else:
                status.error = root_cause(failure.error) if failure.error else "step failed"
        elif status.state == "done":
            return
        elif event.event_type == DagsterEventType.STEP_START:
            status.state = "running"
        elif event.event_type == DagsterEventType.STEP_SUCCESS:
            status.state = "done"
        elif event.event_type == DagsterEventType.STEP_UP_FOR_RETRY:
            status.state = "retrying"
        elif event.event_type == DagsterEventType.STEP_SKIPPED:
            status.state = "skipped"


def follow(worker: threading.Thread, follower: RunFollower, console: Console) -> None:
    """Draw progress while `worker` runs (a live bar in a terminal, one line per step otherwise)."""
    if not console.is_terminal:
        announced: set[str] = set()
        while worker.is_alive():
            worker.join(0.5)  # returns as soon as the run ends
            follower.poll()
            for status in follower.statuses:
                if status.state in {"done", "failed", "skipped"} and status.dataset not in announced:
                    announced.add(status.dataset)
                    console.print(f"{status.name}: {status.state}")
        follower.poll()
        return
    columns = (TextColumn("{task.description:<16}"), BarColumn(), TextColumn("{task.fields[detail]}"), TimeElapsedColumn())
    with Progress(*columns, console=console) as bars:
        tasks = {s.dataset: bars.add_task(s.name, total=100, detail="waiting") for s in follower.statuses}
        while True:
            alive = worker.is_alive()
            follower.poll()
            for status in follower.statuses:
                done = status.state in {"done", "failed", "skipped"}
                completed = 100 if done else (status.percent or 0)
                detail = f"{status.state}, {status.rows_read:,} rows read" if status.rows_read else status.state
                bars.update(tasks[status.dataset], completed=completed, detail=detail)
            if not alive:
                return
            worker.join(0.3)


def summary_table(steps: list[AssetStatus]) -> Table:
    table = Table(title="Pipeline summary")
    columns = (
        "pipeline",
        "dataset",
        "status",
        "read",
        "published",
        "quarantined",
        "filtered",
        "of which duplicates",
        "in target",
        "seconds",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in {"pipeline", "dataset", "status"} else "right", overflow="fold")
    for status in steps:
        meta = status.metadata

        def number(key: str, meta: dict = meta) -> str:
            return f"{meta[key]:,}" if isinstance(meta.get(key), int) else "-"

        seconds = meta.get("duration_seconds")
        table.add_row(
            status.name,
            status.dataset,
            status.state if not meta.get("skipped") else f"done, nothing new: {meta['skipped']}",
            number("rows_read"),
            number("rows_published"),
            number("rows_quarantined"),
            number("rows_filtered"),
            number("rows_deduplicated"),
            number("dagster/row_count"),
            f"{seconds:.2f}" if isinstance(seconds, float) else "-",
        )
    return table


def models_table(models: list[AssetStatus]) -> Table:
    """One row per dbt model: its table, whether it was built, rows (tables only) and how its tests went."""
    table = Table(title="dbt models")
    for column in ("model", "dataset", "status", "rows", "tests passed", "warned", "failed", "seconds"):
        table.add_column(column, justify="left" if column in {"model", "dataset", "status"} else "right")
    for model in models:
        rows, seconds = model.metadata.get("dagster/row_count"), model.metadata.get("Execution Duration")
        failed = [c for c in model.checks if not c.passed]
        warned = sum(c.severity == "warn" for c in failed)
        table.add_row(
            model.name,
            model.dataset,
            model.state,
            f"{rows:,}" if isinstance(rows, int) else "view" if model.state == "done" else "-",
            str(len(model.checks) - len(failed)),
            str(warned),
            str(len(failed) - warned),
            f"{seconds:.2f}" if isinstance(seconds, float) else "-",
        )
    return table


def checks_table(steps: list[AssetStatus]) -> Table | None:
    """One row per quality check judged in the run: passed, or failed with its severity."""
    rows = [(status.name, check) for status in steps for check in status.checks]
    if not rows:
        return None
    table = Table(title="Quality checks")
    for column in ("asset", "check", "result", "failing rows", "detail"):
        table.add_column(column, justify="right" if column == "failing rows" else "left", overflow="fold")
    for pipeline, check in rows:
        result = "passed" if check.passed else ("[red]failed[/red]" if check.severity == "error" else "[yellow]warning[/yellow]")
        failing = f"{check.rows_failing:,}" if isinstance(check.rows_failing, int) else ""
        table.add_row(pipeline, check.name, result, failing, check.detail)
    return table
