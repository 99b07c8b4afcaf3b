"""`etl catalog`: the datasets, their owners, schemas, sizes, freshness and check results."""

from __future__ import annotations

import datetime
import json
import sys

import click
from rich.console import Console
from rich.table import Table

from etl_platform.cli.common import instance, settings
from etl_platform.instance.catalog import CatalogEntry, build_catalog


def _age(published: datetime.datetime | None, now: datetime.datetime) -> str:
    if published is None:
        return "never"
    seconds = int((now - published).total_seconds())
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{published:%Y-%m-%d %H:%M} UTC ({seconds // size} {unit} ago)"
    return f"{published:%Y-%m-%d %H:%M} UTC ({seconds} s ago)"


def catalog_table(entries: list[CatalogEntry]) -> Table:
    table = Table(title=f"{len(entries)} datasets")
    for column in ("dataset", "kind", "group", "owner", "schema", "rows", "last published", "checks"):
        table.add_column(column, justify="right" if column == "rows" else "left", overflow="fold")
    now = datetime.datetime.now(tz=datetime.UTC)
    for entry in entries:
        table.add_row(
            entry.dataset,
            entry.kind,
            entry.group,
            ", ".join(entry.owners) or "-",
            ", ".join(f"{name} {type_}" for name, type_ in entry.columns) or "-",
            f"{entry.rows:,}" if entry.rows is not None else "-",
            _age(entry.last_published, now),
            entry.check_summary(),
        )
    return table


@click.command()
@click.argument("search", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON (full schema and every check).")
def catalog(search: str | None, as_json: bool) -> None:
    """List datasets (pipelines, dbt models, external ones) matching SEARCH, or all.

    SEARCH matches the name, description, group, owners and column names, ignoring case. Each
    dataset shows its owner and group (from the definitions), and from the Dagster instance at
    DAGSTER_HOME its schema and row count as last published, when that was, and its checks'
    latest results.
    """
    resolved = settings()
    from etl_platform.definitions import build_definitions

    found = build_catalog(build_definitions(resolved), instance(resolved))
    entries = [e for e in found if search is None or e.matches(search)]
    if as_json:
        click.echo(json.dumps([e.as_json() for e in entries], indent=2))
        return
    Console(file=sys.stdout, width=None if sys.stdout.isatty() else 220).print(catalog_table(entries))
