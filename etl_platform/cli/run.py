"""`etl run`: materialize pipelines (and the dbt models) through Dagster, so every run is in the instance and the UI."""

from __future__ import annotations

import sys
import threading
import uuid

import click
from dagster import AssetKey, DagsterInstance, Definitions, build_reconstructable_job, execute_job
from rich.console import Console

from etl_platform.cli.common import EXIT_USAGE
from etl_platform.cli.progress import AssetStatus, RunFollower, checks_table, follow, models_table, summary_table
from etl_platform.instance.runs import CLI_TRIGGER, record_ended_run_span
from etl_platform.settings import Settings
from etl_platform.spec import PipelineSpec
from etl_platform.tracing import NO_TRACER, Tracer, otlp_tracer

# The terminal shows progress bars and a summary; Dagster's own step log stays in the instance (and the UI).
QUIET_CONSOLE = {"console": {"config": {"log_level": "CRITICAL"}}}


# The definitions built in this process, with and without the dbt layer, and the settings they were built from.
_BUILT: dict[bool, tuple[Settings, Definitions]] = {}


def cli_definitions(with_dbt: bool) -> Definitions:
    """The composition root's definitions, built once per process for the same settings.

    Dagster reconstructs a run's job several times (to plan it, to run it, for each step): each
    build would read every pipeline file again. A pipeline run leaves the dbt layer out: importing
    dagster-dbt and loading the manifest would cost seconds that no step of it uses.
    """
    from etl_platform.definitions import build_definitions

    settings = Settings.from_env()
    built = _BUILT.get(with_dbt)
    if built is None or built[0] != settings:
        built = _BUILT[with_dbt] = (settings, build_definitions(settings, with_dbt=with_dbt))
    return built[1]


def pipeline_job(job: str):
    """Reconstruct a job of the composition root by name (Dagster calls this here and in step processes)."""
    from etl_platform.definitions import DBT_JOB

    return cli_definitions(with_dbt=job == DBT_JOB).resolve_job_def(job)


def dbt_model_statuses(defs: Definitions) -> list[AssetStatus]:
    """One status per dbt model, in the order dbt builds them, all of the one dbt step."""
    from assets.dbt import DBT_ASSETS_NAME

    graph = defs.resolve_asset_graph()
    models = [
        key
        for key in graph.toposorted_asset_keys
        if graph.get(key).is_executable and graph.get(key).assets_def.node_def.name == DBT_ASSETS_NAME
    ]
    return [AssetStatus(key.path[-1], ".".join(key.path), DBT_ASSETS_NAME, kind="dbt") for key in models]


def require_broker(settings: Settings) -> None:
    """With celery workers configured, end the command (exit code 2) when their broker does not answer:
    every step would fail with a bare "Connection refused" after the run had started."""
    from etl_platform.instance.celery_health import BROKER_FIX, reach_broker

    if settings.celery_broker is None:
        return
    try:
        reach_broker(settings.celery_broker)
    except ConnectionError as exc:
        click.secho(f"{exc}. Nothing was run. Fix: {BROKER_FIX}", fg="red", err=True)
        sys.exit(EXIT_USAGE)


def run_through_dagster(
    settings: Settings,
    specs: list[PipelineSpec],
    parallel: int,
    console: Console,
    full_refresh: bool = False,
    with_dbt: bool = False,
) -> tuple[bool, list[AssetStatus]]:
    """Run `specs` in the instance at DAGSTER_HOME, then (`with_dbt`) a dbt build, following each run;
    print the summary, return success and every asset's status.

    The dbt build is a run of its own: in one run Dagster would skip it whenever one upstream
    pipeline had nothing new, leaving marts stale beside a pipeline that did publish.
    """
    from assets import dataset_key
    from etl_platform.cli.common import instance
    from etl_platform.definitions import ALL_PIPELINES_JOB, DBT_JOB, job_name

    pipelines = [
        AssetStatus(s.id, s.destination.dataset, dataset_key(s.destination.dataset).to_python_identifier()) for s in specs
    ]
    single = len(pipelines) == 1
    run_config = {
        "loggers": QUIET_CONSOLE,
        # On celery workers (assets/workers.py) the queues' workers set the parallelism, not --parallel.
        **({} if single or settings.celery_workers else {"execution": {"config": _executor(parallel)}}),
        **({"ops": {status.step_key: {"config": {"full_refresh": True}} for status in pipelines}} if full_refresh else {}),
    }
    tags = {"etl/trigger": CLI_TRIGGER, **({"etl/full_refresh": "true"} if full_refresh else {})}
    job = job_name(specs[0].id) if single else ALL_PIPELINES_JOB
    runs = instance(settings)
    tracer = otlp_tracer(settings.traces_endpoint)
    success = _follow_run(runs, job, pipelines, run_config, tags, console, subset=not single, tracer=tracer)
    models = dbt_model_statuses(cli_definitions(with_dbt=True)) if with_dbt else []
    if models and success:
        dbt_tags = {"etl/trigger": CLI_TRIGGER}
        success = _follow_run(runs, DBT_JOB, models, {"loggers": QUIET_CONSOLE}, dbt_tags, console, subset=False, tracer=tracer)
    for model in models if not success else []:
        model.state = "not run" if model.state == "waiting" else model.state
    console.print(summary_table(pipelines))
    if models:
        console.print(models_table(models))
    checks = checks_table(pipelines + models)
    if checks is not None:
        console.print(checks)
    return success, pipelines + models


def _executor(parallel: int) -> dict:
    return {"multiprocess": {"max_concurrent": parallel}} if parallel > 1 else {"in_process": {}}


def _follow_run(
    instance: DagsterInstance,
    job: str,
    statuses: list[AssetStatus],
    run_config: dict,
    tags: dict,
    console: Console,
    subset: bool,
    tracer: Tracer,
) -> bool:
    """Execute `job` (only the statuses' assets, `subset`) in a thread while drawing its progress; True if it succeeded.

    This process is the one that sees the run end, so it records the run's span (the daemon's
    sensor leaves runs tagged `etl/trigger: cli` to it)."""
    invocation = uuid.uuid4().hex
    outcome: dict = {}

    def work() -> None:
        result = execute_job(
            build_reconstructable_job(__name__, "pipeline_job", (job,)),
            instance,
            run_config=run_config,
            tags={"etl/invocation": invocation, **tags},
            asset_selection=[AssetKey(status.dataset.split(".")) for status in statuses] if subset else None,
        )
        outcome["success"] = result.success
        if tracer is not NO_TRACER:  # traces off: no read of the run's record for a span nobody exports
            record_ended_run_span(tracer, instance, result.run_id)

    worker = threading.Thread(target=work, name="dagster-run")
    worker.start()
    follow(worker, RunFollower(instance, invocation, statuses), console)
    worker.join()
    return bool(outcome.get("success"))


__all__ = ["pipeline_job", "run_through_dagster"]
