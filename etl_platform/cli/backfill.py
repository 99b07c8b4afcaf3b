"""`etl backfill`: load a range of a partitioned pipeline's partitions, one Dagster run per partition.

Each run is the pipeline job for one partition key, in the instance at DAGSTER_HOME, tagged with
the backfill's id (`etl/backfill`), so the UI lists them by partition. `--parallel N` sets the
limit of the pipeline's concurrency pool (`partitions_<schema>_<table>`, assets.partitions) and
runs N partitions at once; the pool also holds back runs of the same dataset started elsewhere.
With a daemon (production), `dagster job backfill -j <pipeline>_job --from A --to B` queues the
same runs through Dagster's own backfill command, and the UI's "Materialize" offers a range.
"""

from __future__ import annotations

import multiprocessing
import sys
import uuid
from concurrent.futures import ProcessPoolExecutor
from functools import partial

import click
from rich.console import Console

from etl_platform.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, instance, registry, settings
from etl_platform.errors import SpecError

console = Console()
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def partition_range(keys: list[str], first: str, last: str) -> list[str]:
    """The keys from `first` to `last`, both included, in the definition's order."""
    for key in (first, last):
        if key not in keys:
            shown = f"{keys[0]} ... {keys[-1]}" if keys else "none"
            raise click.UsageError(f"partition {key!r} does not exist (the partitions are {shown})")
    chosen = keys[keys.index(first) : keys.index(last) + 1]
    if not chosen:
        raise click.UsageError(f"--from {first} comes after --to {last}")
    return chosen


def run_partition(job_name: str, key: str, tags: dict) -> bool:
    """One partition's run of the pipeline job, executed in this process and recorded in the instance."""
    from dagster import build_reconstructable_job, execute_job

    from etl_platform.cli.common import instance as open_instance

    with open_instance(settings()) as runs:
        result = execute_job(
            build_reconstructable_job("etl_platform.cli.run", "pipeline_job", (job_name,)),
            runs,
            run_config=QUIET,
            tags={**tags, "dagster/partition": key},
        )
    return result.success


@click.command()
@click.argument("pipeline")
@click.option("--from", "first", required=True, help="The first partition key, e.g. 2024-01-01.")
@click.option("--to", "last", required=True, help="The last partition key (included).")
@click.option("--parallel", default=1, show_default=True, help="Partitions loaded at once (the pipeline pool's limit).")
def backfill(pipeline: str, first: str, last: str, parallel: int) -> None:
    """Load the partitions of PIPELINE from --from to --to, each in a Dagster run of its own.

    Every partition reads only its slice and replaces (or merges into) only its slice of the
    target, so re-running a partition replaces it alone. Exit code 0 if every partition loaded.
    """
    from assets.partitions import partitions_definition, pool_name
    from etl_platform.definitions import job_name

    resolved = settings()
    try:
        spec = registry(resolved).get(pipeline)
    except SpecError as exc:
        raise click.UsageError(str(exc)) from None
    definition = partitions_definition(spec)
    if definition is None:
        click.secho(f"pipeline {pipeline!r} has no `partitions:`; run it with `etl run {pipeline}`", fg="red", err=True)
        sys.exit(EXIT_USAGE)
    with instance(resolved) as runs:  # dynamic keys live in the instance (sensors.partition_folders adds them)
        keys = partition_range(list(definition.get_partition_keys(dynamic_partitions_store=runs)), first, last)
        runs.event_log_storage.set_concurrency_slots(pool_name(spec), max(parallel, 1))
    backfill_id = uuid.uuid4().hex[:8]
    tags = {"etl/backfill": backfill_id, "etl/trigger": "backfill"}
    console.print(f"backfill {backfill_id}: {pipeline}, {len(keys)} partitions ({keys[0]} .. {keys[-1]}), {parallel} at once")
    # A process per partition run: Dagster's in-process execution is not meant to share one process.
    with ProcessPoolExecutor(max(parallel, 1), mp_context=multiprocessing.get_context("spawn")) as pool:
        outcomes = dict(zip(keys, pool.map(partial(run_partition, job_name(spec.id), tags=tags), keys), strict=True))
    failed = [key for key, ok in outcomes.items() if not ok]
    for key in keys:
        console.print(f"  {key}: {'loaded' if outcomes[key] else '[red]failed[/red]'}")
    sys.exit(EXIT_FAILED if failed else EXIT_OK)
