"""The `etl` command line: list, validate, plan, run, quarantine, infer, lineage, catalog, doctor, runs, logs, metrics, audit,
warehouse, ui, demo.

Exit codes: 0 success; 1 the work asked for failed (a pipeline run, an invalid file under
`validate`); 2 the command could not start (invalid pipeline folder, unknown pipeline, bad usage).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from etl_platform.cli.audit import audit
from etl_platform.cli.backfill import backfill
from etl_platform.cli.catalog import catalog
from etl_platform.cli.common import EXIT_FAILED, EXIT_OK, allowed_roots, environment, instance, registry, settings
from etl_platform.cli.doctor import doctor
from etl_platform.cli.follow import follow
from etl_platform.cli.infer import infer
from etl_platform.cli.lineage import lineage
from etl_platform.cli.metrics import metrics
from etl_platform.cli.quarantine import quarantine
from etl_platform.cli.runs import logs, runs
from etl_platform.cli.warehouse import warehouse
from etl_platform.errors import EtlError, SpecError, install_log_redaction, masked_url
from etl_platform.spec import PipelineRegistry
from etl_platform.spec.loader import load_pipeline_files, pipeline_files
from etl_platform.spec.registry import load_python_folder, specs_of

# Pinned to the real stdout: the dbt step sends dbt's own output lines to the run's log instead.
console = Console(file=sys.stdout, width=None if sys.stdout.isatty() else 200)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Declarative ETL pipelines as Dagster assets.

    Pipelines are YAML (or Python) files in ETL_PIPELINES_DIR (default: assets/pipelines), dbt
    models are in ETL_DBT_PROJECT_DIR (default: dbt_project). The warehouse is ETL_WAREHOUSE_URL
    (default: DuckDB file data/warehouse.duckdb), input files come
    from ETL_LANDING_DIR (default: data/landing; or s3://bucket/prefix), file datasets go to
    ETL_LAKE_DIR (default: data/lake; or s3://bucket/prefix), and runs are recorded in the Dagster
    instance at DAGSTER_HOME (default: .dagster_home). An S3-compatible endpoint is set with
    AWS_ENDPOINT_URL_S3.
    """
    install_log_redaction()


@cli.command("list")
def list_pipelines() -> None:
    """List pipelines with their source, destination, dependencies, schedule and triggers."""
    pipelines = registry(settings())
    table = Table(title=f"{len(pipelines)} pipelines")
    for column in ("id", "group", "source", "dataset", "write", "depends on", "schedule", "triggers"):
        table.add_column(column)
    for spec in pipelines:
        source = spec.source.type + (f" {spec.file_path}" if spec.file_path else "")
        schedule = f"{spec.schedule.cron} {spec.schedule.timezone}" if spec.schedule else ""
        upstream = ", ".join(p.id for p in pipelines.upstream(spec.id))
        triggers = [f"file arrival every {spec.file_arrival.interval_seconds}s"] if spec.file_arrival else []
        triggers += [f"webhook {dataset}" for dataset in spec.webhook_datasets]
        table.add_row(
            spec.id, spec.group, source, spec.destination.dataset, spec.destination.write, upstream, schedule, ", ".join(triggers)
        )
    console.print(table)


@cli.command()
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--data", is_flag=True, help="Also read a sample of each pipeline's input through its transforms and rules.")
@click.option("--sample", default=1000, show_default=True, help="Rows read per pipeline by --data.")
def validate(files: tuple[Path, ...], data: bool, sample: int) -> None:
    """Validate pipeline FILES (default: the whole pipelines folder), with their dependencies.

    Checks what is known without data: every field, every dependency, and that each lookup's
    dataset is published by a pipeline or a dbt model. With --data, each pipeline also reads a
    sample of its input (writing nothing, as `etl run --dry-run`) through its transforms and
    quality rules, so a rule on a missing column, or a sample the circuit breaker would stop (a
    wrong date format), fails here.
    Exit code 0 if everything is valid, 1 if not (each error names file, field and the fix).
    """
    from etl_platform.cli.validate import check_with_data, unpublished_lookups

    resolved = settings()
    try:
        python, custom_checks = load_python_folder(resolved.pipelines_dir)
        roots = allowed_roots(resolved)
        given = load_pipeline_files(files, custom_checks, roots) if files else []
        folder = [p for p in pipeline_files(resolved.pipelines_dir) if p.resolve() not in {f.resolve() for f in files}]
        pipelines = PipelineRegistry([*load_pipeline_files(folder, custom_checks, roots), *given, *specs_of(python)])
    except SpecError as exc:
        click.secho(str(exc), fg="red", err=True)
        sys.exit(EXIT_FAILED)
    checked = given or list(pipelines)
    errors, warnings = unpublished_lookups(pipelines, resolved)
    errors = [e for e in errors if any(e.startswith(f"{spec.origin}:") for spec in checked)]
    for warning in warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    if data and not errors:
        errors = check_with_data(checked, resolved, sample)
    elif not errors:
        for spec in checked:
            click.echo(f"ok  {spec.id}  ({spec.origin})")
    if errors:
        click.secho("\n".join(errors), fg="red", err=True)
        sys.exit(EXIT_FAILED)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print only the levels as JSON.")
def plan(as_json: bool) -> None:
    """Show execution levels: each level depends only on the levels before it."""
    from etl_platform.cli.validate import unpublished_lookups

    resolved = settings()
    pipelines = registry(resolved)
    errors, warnings = unpublished_lookups(pipelines, resolved)
    for problem in errors + warnings:
        click.secho(f"warning: {problem}; this lookup is no edge of the plan", fg="yellow", err=True)
    levels = pipelines.levels()
    if as_json:
        click.echo(json.dumps(levels))
        return
    for spec in pipelines:
        if effective_source(spec):
            click.echo(effective_source(spec))
    for index, level in enumerate(levels, start=1):
        click.echo(f"level {index}: {', '.join(level)}")
    click.echo(json.dumps(levels))


@cli.command()
@click.argument("pipelines", nargs=-1)
@click.option("--all", "run_all", is_flag=True, help="Run every pipeline, in dependency order, then build the dbt models.")
@click.option("--dry-run", is_flag=True, help="Read a sample; show each stage's row count, schema and first rows; write nothing.")
@click.option("--sample", default=1000, show_default=True, help="Rows read by --dry-run.")
@click.option(
    "--parallel",
    default=1,
    show_default=True,
    help="Run up to N independent pipelines in parallel processes (with ETL_CELERY_BROKER set, celery workers run them).",
)
@click.option(
    "--full-refresh",
    is_flag=True,
    help="Forget incremental state (processed files, SQL cursor marks), reload everything and replace the targets' rows.",
)
def run(pipelines: tuple[str, ...], run_all: bool, dry_run: bool, sample: int, parallel: int, full_refresh: bool) -> None:
    """Materialize PIPELINES (or --all: every pipeline and the dbt models) through Dagster; the run shows in the UI.

    Append and merge pipelines with file sources load only files they have not processed; SQL
    sources with `incremental` load rows past their high-water mark. Exit code 0 if every
    pipeline published (or had nothing new), 1 if any failed, 2 if nothing could start.
    """
    resolved = settings()
    available = registry(resolved)
    if bool(pipelines) == run_all:
        raise click.UsageError("name one or more pipelines, or pass --all")
    try:
        specs = list(available) if run_all else [available.get(p) for p in pipelines]
    except SpecError as exc:
        raise click.UsageError(str(exc)) from None
    from etl_platform.cli.demo_api import serving
    from etl_platform.settings import export_to_process

    with serving(resolved, specs) as (api, api_environment):
        if api is not None:  # the demo's REST pipeline, outside `etl demo` and `etl ui`
            export_to_process(api_environment)  # for the settings, and the step processes that inherit it
            resolved = settings()
            console.print(f"Demo API at {api.url} for the demo pipelines (stopped when the run ends)", highlight=False)
        if dry_run:
            sys.exit(_dry_run(specs, resolved, sample))
        order = [p for level in available.levels() for p in level]
        specs.sort(key=lambda s: order.index(s.id))
        from etl_platform.cli.run import require_broker, run_through_dagster

        require_broker(resolved)
        success, statuses = run_through_dagster(resolved, specs, parallel, console, full_refresh, with_dbt=run_all)
    print_failures(statuses)
    sys.exit(EXIT_OK if success else EXIT_FAILED)


def _dry_run(specs, resolved, sample: int) -> int:
    from etl_platform.engine.dry_run import dry_run

    for spec in specs:
        console.rule(f"{spec.id} (dry run, nothing is written)")
        if effective_source(spec):
            console.print(effective_source(spec), highlight=False, markup=False)
        try:
            stages = dry_run(spec, environment(resolved), sample)
        except EtlError as exc:
            console.print(f"[red]{exc}[/red]", highlight=False)
            return EXIT_FAILED
        for stage in stages:
            data = stage.data
            notes = "".join(
                [
                    f", {stage.rejected} rejected" if stage.rejected else "",
                    f", {stage.filtered} filtered" if stage.filtered else "",
                ]
            )
            console.print(f"[bold]{stage.name}[/bold]: {len(data)} rows{notes}")
            console.print("  schema: " + ", ".join(f"{f.name} {f.type}" for f in data.schema), highlight=False)
            preview = Table(*data.column_names, show_lines=False)
            for row in data.slice(0, 3).to_pylist():
                preview.add_row(*[("" if v is None else str(v))[:28] for v in row.values()])
            console.print(preview)
    return EXIT_OK


def effective_source(spec) -> str | None:
    """A REST source's configuration after defaults (secrets are `${VAR}` references, never values)."""
    effective = getattr(spec.source, "effective", None)
    if effective is None:
        return None
    return f"{spec.id}: effective source configuration\n{json.dumps(effective(), indent=2)}"


def print_failures(statuses) -> None:
    """Each failed step's message (once for the dbt step's models), unwrapped so paths and queries can be copied."""
    printed = set()
    for status in statuses:
        if status.error and status.step_key not in printed:
            printed.add(status.step_key)
            name = "dbt build" if status.kind == "dbt" else status.name
            console.print(f"[red]{name} failed:[/red] {status.error}", highlight=False, soft_wrap=True)


@cli.command()
@click.option("--port", default=3000, show_default=True, help="Port of the Dagster UI.")
def ui(port: int) -> None:
    """Open the Dagster UI (dagster dev) on this project's instance and code location.

    When a pipeline reads the demo API (the demo's `reviews`), the demo API is served on
    127.0.0.1 while the UI runs, so the UI can materialize it too; stopping the UI (Ctrl-C or
    SIGTERM) stops dagster dev, then the demo API.
    """
    from etl_platform.cli.demo_api import serving

    resolved = settings()
    with instance(resolved):  # its storage is created here, under the folder's lock, not by a racing daemon
        pass
    dagster = shutil.which("dagster") or str(Path(sys.executable).parent / "dagster")
    workspace = resolved.project_dir / "workspace.yaml"
    try:
        pipelines = list(PipelineRegistry.from_folder(resolved.pipelines_dir, roots=allowed_roots(resolved)))
    except SpecError:
        pipelines = []  # the UI shows the folder's errors where the code location fails to load
    with serving(resolved, pipelines) as (api, api_environment):
        if api is not None:
            console.print(f"Demo API at {api.url} for the demo pipelines (stopped when the UI exits)", highlight=False)
        command = [dagster, "dev", "-w", str(workspace), "-p", str(port)]
        code = run_until_stopped(command, resolved.subprocess_environment(**api_environment), resolved.project_dir)
    sys.exit(code)


def run_until_stopped(command: list[str], env: dict[str, str], cwd: Path) -> int:
    """Run `command` in a process group of its own until it exits; return its exit code.

    SIGINT (Ctrl-C reaches only this process now) and SIGTERM are passed on to the whole group. When
    the command has exited, what it left in its group is stopped too: dagster dev's code servers
    otherwise outlive it until their heartbeat times out (45 s), holding the demo API's pipelines'
    environment and the instance. The handlers are set before the command starts, so a signal this
    process ignored (as under `etl ui &`) is not ignored by the command as well.
    """
    group: dict[str, int] = {}

    def forward(number: int, _frame) -> None:
        if "pgid" in group:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group["pgid"], number)

    previous = {number: signal.signal(number, forward) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        process = subprocess.Popen(command, env=env, cwd=cwd, start_new_session=True)
        group["pgid"] = process.pid
        code = process.wait()
        _stop_group(process.pid)
        return code
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _stop_group(pgid: int, grace_seconds: float = 10.0) -> None:
    """SIGTERM to what is left of a process group, then SIGKILL to what still runs after `grace_seconds`."""
    for number in (signal.SIGTERM, signal.SIGKILL):
        deadline = time.monotonic() + grace_seconds
        try:
            os.killpg(pgid, number)
            while time.monotonic() < deadline:
                time.sleep(0.2)
                os.killpg(pgid, 0)  # raises once the group is empty
        except ProcessLookupError:
            return


@cli.command()
@click.option("--parallel", default=1, show_default=True, help="Run up to N independent pipelines in parallel processes.")
def demo(parallel: int) -> None:
    """Write the demo data set into the landing zone, serve the demo REST API, materialize every demo pipeline,
    then build the dbt models; then the API publishes new and edited reviews and `reviews` loads only those."""
    from etl_platform.cli.demo import write_demo_data
    from etl_platform.cli.demo_api import KEY_VARIABLE, RELEASES, reads_demo_api, serving

    resolved = settings()
    pipelines = registry(resolved)  # an invalid pipelines folder stops here, before any data is written
    demo_secrets = {}
    if not resolved.secrets.get("ETL_PII_SALT"):
        demo_secrets["ETL_PII_SALT"] = "demo-only-salt"
        console.print("[yellow]ETL_PII_SALT is not set: using a demo-only salt (set your own secret in production).[/yellow]")
    files = write_demo_data(Path(resolved.landing))
    console.print(f"Demo data written to {resolved.landing} ({len(files)} files)")
    with serving(resolved, pipelines, releases=1) as (api, api_environment):
        if api is not None and not resolved.secrets.get(KEY_VARIABLE):
            console.print(f"[yellow]{KEY_VARIABLE} is not set: the demo API and its pipelines use a demo-only key.[/yellow]")
        env = resolved.subprocess_environment(**demo_secrets, **api_environment)
        # `etl run` in a process of its own: the demo secrets and the API's address reach it through its environment.
        success = _etl_run(env, "--all", "--parallel", str(parallel))
        readers = [spec.id for spec in pipelines if reads_demo_api(spec)]
        if api is not None and success:
            second = RELEASES["second"]
            api.publish_second_release()
            console.print(
                f"The demo API publishes {second['new']} new reviews and {second['edited']} edits: "
                f"{', '.join(readers)} loads only those (incremental on updated_at)"
            )
            success = _etl_run(env, *readers)
    console.print(
        f"Warehouse: {masked_url(resolved.warehouse_url)}\nQuarantined rows: SELECT * FROM _etl.quarantine\n"
        "Open the Dagster UI to browse assets, runs and metadata: make ui (or .venv/bin/etl ui), then http://127.0.0.1:3000"
    )
    sys.exit(EXIT_OK if success else EXIT_FAILED)


def _etl_run(env: dict[str, str], *arguments: str) -> bool:
    command = [sys.executable, "-m", "etl_platform.cli.main", "run", *arguments]
    return subprocess.run(command, env=env, check=False).returncode == EXIT_OK


cli.add_command(quarantine)
cli.add_command(infer)
cli.add_command(lineage)
cli.add_command(catalog)
cli.add_command(doctor)
cli.add_command(runs)
cli.add_command(logs)
cli.add_command(metrics)
cli.add_command(audit)
cli.add_command(warehouse)
cli.add_command(backfill)
cli.add_command(follow)

if __name__ == "__main__":
    cli()
