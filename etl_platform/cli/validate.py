"""`etl validate`: what can be known about the pipelines without running them, and with `--data`, from a sample.

Without data: every file parses and validates, dependencies resolve, and every lookup names a
dataset that a pipeline or a dbt model publishes (the dbt models from the project's parsed
manifest, when there is one). With `--data`: each pipeline also reads a sample through its
transforms and rules as `etl run --dry-run` does (engine.dry_run), and the circuit breaker judges
the sample, so a rule on a column the data does not have, or a cast format that fails every row,
shows before a run. Nothing is written.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from etl_platform.errors import EtlError
from etl_platform.settings import Settings
from etl_platform.spec import PipelineRegistry, PipelineSpec


def dbt_model_datasets(project_dir: Path) -> set[str] | None:
    """The datasets (`schema.table`) of the dbt project's models, from its newest parsed manifest; None without one.

    Keyed as assets/dbt.py keys them: the model's schema and its alias (or name).
    """
    manifests = sorted((project_dir / "target").glob("*/manifest.json"), key=lambda path: path.stat().st_mtime)
    if not manifests:
        return None
    nodes = json.loads(manifests[-1].read_text()).get("nodes", {}).values()
    return {f"{n['schema']}.{n.get('alias') or n['name']}" for n in nodes if n.get("resource_type") == "model"}


def unpublished_lookups(pipelines: PipelineRegistry, settings: Settings) -> tuple[list[str], list[str]]:
    """Lookups that nothing publishes, as errors; as warnings instead while the dbt models cannot be known
    (a dbt project without a parsed manifest: its models may publish them)."""
    models = dbt_model_datasets(settings.dbt_project_dir)
    problems = pipelines.unpublished_lookups(models or set())
    if problems and models is None and (settings.dbt_project_dir / "dbt_project.yml").is_file():
        note = f"unless a dbt model does: {settings.dbt_project_dir} has no parsed manifest yet (`etl run` or `etl ui` parses it)"
        return [], [f"{problem} ({note})" for problem in problems]
    return problems, []


def check_with_data(specs: list[PipelineSpec], settings: Settings, sample: int) -> list[str]:
    """Read a sample through each pipeline's transforms and rules; one line per pipeline, failures as errors."""
    from etl_platform.cli.common import environment
    from etl_platform.engine.dry_run import dry_run, preview_refusal
    from etl_platform.quality.audit import breaker_outcome

    failures = []
    for spec in specs:
        refusal = preview_refusal(spec)
        if refusal is not None:
            click.echo(f"--  {spec.id}  (not read: {refusal})")
            continue
        try:
            stages = dry_run(spec, environment(settings), sample)
        except EtlError as error:
            if error.transient:  # an upstream not published yet, an outage: nothing wrong with the pipeline
                click.secho(f"--  {spec.id}  not checked with data: {error}", fg="yellow")
            else:
                failures.append(str(error))
            continue
        rows, rejected = len(stages[0].data), sum(stage.rejected for stage in stages)
        quarantined = {stage.name: stage.rejected for stage in stages if stage.rejected}
        examples = {stage.name: stage.first_reason for stage in stages if stage.first_reason}
        breaker = breaker_outcome(spec.quality.circuit_breaker, rows, len(stages[-1].data), quarantined, examples)
        if not breaker.passed:
            failures.append(f"{spec.origin}: on a sample of its input the circuit breaker would stop the load: {breaker.detail}")
            continue
        click.echo(f"ok  {spec.id}  ({rows} sample rows, {rejected} rejected by its transforms and rules)")
    return failures
