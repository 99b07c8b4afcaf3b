"""`etl follow PIPELINE`: a stream or change-capture pipeline's micro-batches back to back until stopped."""

from __future__ import annotations

import signal
import sys
import threading

import click

from etl_platform.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, environment, registry, settings
from etl_platform.errors import EtlError, SpecError


@click.command()
@click.argument("pipeline")
@click.option("--idle-wait", default=1.0, show_default=True, help="Seconds to wait after a batch that found nothing new.")
def follow(pipeline: str, idle_wait: float) -> None:
    """Run PIPELINE's micro-batches one after the other until SIGTERM or Ctrl-C, for latency below
    the sensor interval (stream, postgres_cdc and mariadb_cdc pipelines only; run no sensor for it meanwhile).

    Each batch takes up to the pipeline's micro-batch size (max_messages / max_changes) or what
    arrived within its maximum wait, publishes it with its position and acknowledges it after the
    commit. A stop request is honoured once the batch in flight has published: exit code 0. A
    failed batch ends the command with exit code 1 and leaves the position where it was.
    """
    # Imported here: the engine loads scikit-learn and torch, which the other commands' --help never needs.
    from etl_platform.engine.follow import follow as follow_batches

    resolved = settings()
    try:
        spec = registry(resolved).get(pipeline)
    except SpecError as exc:
        raise click.UsageError(str(exc)) from None
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    def report(batch) -> None:
        if batch.rows_read:
            click.echo(
                f"{spec.id}: {batch.rows_published:,} published, {batch.rows_quarantined:,} quarantined (run {batch.run_id})"
            )

    try:
        batches = follow_batches(spec, environment(resolved), stop, report, idle_wait)
    except SpecError as exc:
        click.secho(str(exc), fg="red", err=True)
        sys.exit(EXIT_USAGE)
    except EtlError as exc:
        click.secho(f"{spec.id}: stopped by a failed batch: {exc}", fg="red", err=True)
        sys.exit(EXIT_FAILED)
    click.echo(f"{spec.id}: stopped after {batches:,} batches")
    sys.exit(EXIT_OK)
