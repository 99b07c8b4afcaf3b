"""`etl lineage`: where a dataset's columns come from and what is computed from them, from the Dagster instance."""

from __future__ import annotations

import sys

import click

from etl_platform.cli.common import EXIT_USAGE, instance, settings
from etl_platform.instance.lineage import read_lineage_graph
from etl_platform.lineage.graph import ColumnRef, render_dot, render_json, render_text, walk

RENDERERS = {"text": render_text, "json": render_json, "dot": render_dot}


@click.command()
@click.argument("dataset")
@click.option("--column", "-c", "columns", multiple=True, help="Only this column (repeatable); default: every column.")
@click.option("--upstream", "direction", flag_value="upstream", help="Only where the columns come from.")
@click.option("--downstream", "direction", flag_value="downstream", help="Only what is computed from them.")
@click.option(
    "--format",
    "output",
    type=click.Choice(sorted(RENDERERS)),
    default="text",
    show_default=True,
    help="text: indented trees; json: the same trees; dot: Graphviz (pipe into `dot -Tsvg`).",
)
def lineage(dataset: str, columns: tuple[str, ...], direction: str | None, output: str) -> None:
    """Column lineage of DATASET (e.g. marts.daily_report) across pipelines and dbt models.

    Answers from the latest materialization of every asset in the Dagster instance at
    DAGSTER_HOME: pipelines record each column's sources and the steps that made it (rename,
    cast, derive, lookup, ...), dbt models the columns their SQL reads. A pipeline's input files
    show as `schema.table@input`. Without --upstream or --downstream, both directions are shown.
    Exit code 2 if the dataset or a column was never materialized.
    """
    resolved = settings()
    from etl_platform.definitions import build_definitions

    keys = build_definitions(resolved).resolve_asset_graph().get_all_asset_keys()
    graph = read_lineage_graph(instance(resolved), keys)
    if dataset not in graph.columns:
        known = (
            ", ".join(sorted(d for d in graph.columns if not d.endswith("@input"))) or "none yet: materialize some assets first"
        )
        click.secho(f"no lineage recorded for dataset {dataset!r}; datasets with lineage: {known}", fg="red", err=True)
        sys.exit(EXIT_USAGE)
    missing = [c for c in columns if c not in graph.columns[dataset]]
    if missing:
        click.secho(
            f"{dataset} has no column {', '.join(map(repr, missing))}; its columns: {', '.join(graph.columns[dataset])}",
            fg="red",
            err=True,
        )
        sys.exit(EXIT_USAGE)
    if not graph.columns[dataset]:
        click.echo(f"{dataset}: its latest materialization recorded no columns")
        return
    directions = [direction] if direction else ["upstream", "downstream"]
    trees = [(d, walk(graph, ColumnRef(dataset, c), d)) for c in columns or graph.columns[dataset] for d in directions]
    click.echo(RENDERERS[output](trees))
