"""`etl runs` and `etl logs RUN_ID`: recent runs, and a run's root-cause error and step logs, from the instance."""

from __future__ import annotations

import datetime
import sys

import click
from rich.console import Console
from rich.table import Table

from etl_platform.cli.common import EXIT_USAGE, instance, settings
from etl_platform.errors import redact


def _when(timestamp: float | None) -> str:
    return datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC).strftime("%Y-%m-%d %H:%M:%S") if timestamp else "-"


@click.command()
@click.option("--limit", default=20, show_default=True, help="How many of the newest runs to list.")
@click.option("--failed", is_flag=True, help="Only failed runs.")
def runs(limit: int, failed: bool) -> None:
    """List the newest runs in the Dagster instance at DAGSTER_HOME: id, job, status, trigger, start and duration."""
    from etl_platform.instance.runs import recent_runs

    found = instance(settings())
    table = Table(title="runs")
    for column in ("run id", "job", "status", "trigger", "started (UTC)", "seconds"):
        table.add_column(column)
    for run in recent_runs(found, limit, failed):
        record = found.get_run_record_by_id(run.run_id)
        start, end = (record.start_time, record.end_time) if record else (None, None)
        seconds = f"{end - start:.1f}" if start and end else "-"
        tags = run.tags
        trigger = tags.get("etl/trigger") or tags.get("dagster/sensor_name") or tags.get("dagster/schedule_name") or "-"
        table.add_row(run.run_id, run.job_name, run.status.value, trigger, _when(start), seconds)
    Console(file=sys.stdout, width=None if sys.stdout.isatty() else 200).print(table)


@click.command()
@click.argument("run_id")
@click.option("--step", help="Only this step's events (a step key as `etl logs` shows them).")
def logs(run_id: str, step: str | None) -> None:
    """Show why run RUN_ID (or a unique prefix of it) failed, then its event log, oldest first.

    Exit code 0 whether the run failed or not (the log was shown); 2 if no such run is in the instance.
    """
    from etl_platform.instance.runs import failure_reasons, find_run, run_logs

    found = instance(settings())
    try:
        run = find_run(found, run_id)
    except LookupError as error:
        click.secho(str(error), fg="red", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(f"run {run.run_id}  job {run.job_name}  status {run.status.value}")
    for failed_step, reason in failure_reasons(found, run.run_id):
        click.secho(redact(f"root cause ({failed_step}): {reason}"), fg="red")
    for line in run_logs(found, run.run_id, step):
        click.echo(redact(line.text()))
