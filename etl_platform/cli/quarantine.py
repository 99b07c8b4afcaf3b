"""`etl quarantine`: list, show, replay and purge the rows pipelines rejected."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click
from rich.console import Console
from rich.table import Table

from etl_platform.cli.common import EXIT_FAILED, EXIT_OK, environment, registry, settings
from etl_platform.errors import EtlError
from etl_platform.warehouse import open_warehouse
from etl_platform.warehouse.metadata import META_SCHEMA, ensure_metadata
from etl_platform.warehouse.publish import purge_quarantine

console = Console(width=None if sys.stdout.isatty() else 140)


def selection_options(command):
    command = click.option("--run", "run_id", help="Only rows of this run id.")(command)
    command = click.option("--rule", help="Only rows rejected by this rule (e.g. cast, malformed_line, valid_email).")(command)
    return click.option("--pipeline", help="Only rows of this pipeline.")(command)


@contextmanager
def quarantine_rows(pipeline: str | None, rule: str | None, run_id: str | None) -> Iterator[tuple]:
    """The warehouse, the quarantine table's name, and the WHERE clause (with parameters) of a selection."""
    # Imported here, as in `replay`: the engine loads scikit-learn and torch, which listing rows never needs.
    from etl_platform.engine.replay import QuarantineSelection

    where, params = QuarantineSelection(pipeline, rule, run_id).where()
    resolved = settings()
    warehouse = open_warehouse(resolved.warehouse_url, secrets=resolved.secrets)
    try:
        ensure_metadata(warehouse)
        yield warehouse, warehouse.relation(META_SCHEMA, "quarantine"), where, params
    finally:
        warehouse.close()


@click.group()
def quarantine() -> None:
    """Rows rejected by pipelines, kept in _etl.quarantine with reason, file and line."""


@quarantine.command("list")
@selection_options
def list_rows(pipeline: str | None, rule: str | None, run_id: str | None) -> None:
    """Count quarantined rows by pipeline, rule and run."""
    with quarantine_rows(pipeline, rule, run_id) as (warehouse, relation, where, params):
        rows = warehouse.query(
            f"SELECT pipeline, rule, run_id, count(*), max(quarantined_at) FROM {relation}{where} "
            f"GROUP BY pipeline, rule, run_id ORDER BY 5 DESC",
            params,
        )
    table = Table(title=f"{sum(r[3] for r in rows):,} quarantined rows")
    for column in ("pipeline", "rule", "run", "rows", "latest"):
        table.add_column(column, justify="right" if column == "rows" else "left")
    for pipeline_id, rule_name, run, count, latest in rows:
        table.add_row(pipeline_id, rule_name, run, f"{count:,}", str(latest)[:19])
    console.print(table)


@quarantine.command()
@selection_options
@click.option("--limit", default=20, show_default=True, help="Rows to show.")
def show(pipeline: str | None, rule: str | None, run_id: str | None, limit: int) -> None:
    """Show quarantined rows: where they came from, the value, and why they were rejected."""
    with quarantine_rows(pipeline, rule, run_id) as (warehouse, relation, where, params):
        rows = warehouse.query(
            f"SELECT quarantine_id, pipeline, rule, source_file, source_line, column_name, value, reason, record "
            f"FROM {relation}{where} ORDER BY quarantined_at, source_file, source_line LIMIT {int(limit)}",
            params,
        )
    table = Table(title=f"first {len(rows)} quarantined rows")
    for column in ("id", "pipeline", "rule", "where", "column", "value", "reason"):
        table.add_column(column, overflow="fold")
    for quarantine_id, pipeline_id, rule_name, source_file, line, column, value, reason, _ in rows:
        table.add_row(
            (quarantine_id or "-")[:8], pipeline_id, rule_name, f"{source_file}:{line}", column or "", value or "", reason
        )
    console.print(table)


@quarantine.command("replay")
@click.argument("pipeline", required=False)
@click.option("--all", "every", is_flag=True, help="Replay every pipeline's quarantined rows, in dependency order.")
@click.option("--rule", help="Only rows rejected by this rule.")
@click.option("--run", "run_id", help="Only rows of this run id.")
def replay_rows(pipeline: str | None, every: bool, rule: str | None, run_id: str | None) -> None:
    """Send PIPELINE's (or --all) quarantined rows back through its transforms and rules into its target.

    Rows that pass are published and leave the quarantine; rows that fail again stay, with the new
    reason. Replaying twice does nothing more. Exit code 1 if a quality gate stops a replay.
    """
    if bool(pipeline) == every:
        raise click.UsageError("name a pipeline, or pass --all")
    from etl_platform.engine.replay import QuarantineSelection, replay, replay_refusal

    resolved = settings()
    pipelines = registry(resolved)
    chosen = [pipelines.get(p) for level in pipelines.levels() for p in level] if every else [pipelines.get(pipeline)]
    for spec in chosen:
        if every and replay_refusal(spec):
            console.print(f"{spec.id}: not replayed: {replay_refusal(spec)}", highlight=False, soft_wrap=True)
            continue
        try:
            report = replay(spec, environment(resolved), QuarantineSelection(spec.id, rule, run_id))
        except EtlError as exc:
            console.print(f"[red]{exc}[/red]", highlight=False, soft_wrap=True)
            sys.exit(EXIT_FAILED)
        if report is None:
            console.print(f"{spec.id}: nothing to replay: no quarantined rows match")
            continue
        by_rule = ", ".join(f"{r} {n}" for r, n in report.quarantined_by_rule.items())
        console.print(
            f"replayed {report.rows_read:,} rows of {spec.id}: {report.rows_published:,} published, "
            f"{report.rows_quarantined:,} still quarantined" + (f" ({by_rule})" if by_rule else "")
        )
    sys.exit(EXIT_OK)


@quarantine.command()
@selection_options
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def purge(pipeline: str | None, rule: str | None, run_id: str | None, yes: bool) -> None:
    """Delete quarantined rows (all of them without a filter)."""
    with quarantine_rows(pipeline, rule, run_id) as (warehouse, relation, where, params):
        count = warehouse.query(f"SELECT count(*) FROM {relation}{where}", params)[0][0]
        if count and not yes:
            click.confirm(f"Delete {count:,} quarantined rows?", abort=True)
        count = purge_quarantine(warehouse, where, params, launched_by="etl quarantine purge")
    console.print(f"purged {count:,} quarantined rows")
