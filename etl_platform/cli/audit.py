"""`etl audit`: list the audit trail and verify its hash chain (warehouse.audit)."""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.table import Table

from etl_platform.cli.common import EXIT_FAILED, EXIT_OK, settings
from etl_platform.errors import EtlError
from etl_platform.warehouse import open_warehouse
from etl_platform.warehouse.audit import audit_entries, verify_chain
from etl_platform.warehouse.metadata import ensure_metadata

console = Console(width=None if sys.stdout.isatty() else 200)


@click.group()
def audit() -> None:
    """The audit trail in _etl.audit_log: who published, replayed, purged or refreshed what, and when."""


@audit.command("list")
@click.option("--dataset", help="Only entries of this dataset.")
@click.option("--limit", default=50, show_default=True, help="The newest entries to show.")
def list_entries(dataset: str | None, limit: int) -> None:
    """Show the newest entries, oldest first, and the hash of the chain's head (note it elsewhere:
    comparing it later shows whether the newest entries were removed)."""
    resolved = settings()
    warehouse = open_warehouse(resolved.warehouse_url, secrets=resolved.secrets)
    try:
        ensure_metadata(warehouse)
        entries = audit_entries(warehouse, limit, dataset)
        head = verify_chain(warehouse).head
    finally:
        warehouse.close()
    table = Table(title=f"{len(entries)} audit entries")
    for column in ("seq", "when (UTC)", "action", "dataset", "tenant", "rows", "run", "db user", "os user", "launched by"):
        table.add_column(column, justify="right" if column in ("seq", "rows") else "left", overflow="fold")
    for e in entries:
        table.add_row(
            str(e["seq"]),
            e["recorded_at"][:19],
            e["action"],
            e["dataset"] or "",
            e["tenant"] or "",
            "" if e["rows"] is None else f"{e['rows']:,}",
            (e["run_id"] or "")[:8],
            e["db_user"] or "",
            e["os_user"] or "",
            e["launched_by"] or "",
        )
    console.print(table)
    console.print(f"head {head}")


@audit.command()
def verify() -> None:
    """Check the hash chain from the first entry. Exit code 0 if intact, 1 naming the first broken entry."""
    try:
        resolved = settings()
        warehouse = open_warehouse(resolved.warehouse_url, secrets=resolved.secrets)
    except EtlError as exc:
        click.secho(str(exc), fg="red", err=True)
        sys.exit(EXIT_FAILED)
    try:
        ensure_metadata(warehouse)
        verdict = verify_chain(warehouse)
    finally:
        warehouse.close()
    if not verdict.intact:
        click.secho(f"audit chain broken at entry {verdict.broken_seq}: {verdict.problem}", fg="red", err=True)
        sys.exit(EXIT_FAILED)
    click.echo(f"audit chain intact: {verdict.entries} entries, head {verdict.head}")
    sys.exit(EXIT_OK)
