"""`etl run`: materialize pipelines through Dagster, so every run is in the instance and the UI."""

from __future__ import annotations

import threading
import uuid

from dagster import DagsterInstance, build_reconstructable_job, execute_job
from rich.console import Console

from etl_platform.cli.progress import PipelineStatus, RunFollower, checks_table, follow, summary_table
from etl_platform.spec import PipelineSpec

# The terminal shows progress bars and a summary; Dagster's own step log stays in the instance (and the UI).
QUIET_CONSOLE = {"console": {"config": {"log_level": "CRITICAL"}}}


def pipeline_job(job: str):
    """Reconstruct a job of the composition root by name (Dagster calls this in step processes)."""
    from etl_platform.definitions import defs

    return defs.resolve_job_def(job)


def run_through_dagster(
    specs: list[PipelineSpec], parallel: int, console: Console, full_refresh: bool = False
) -> tuple[bool, list[PipelineStatus]]:
    """Launch one run for `specs` in the instance at DAGSTER_HOME, follow it, return success and statuses."""
    from assets import dataset_key
    from etl_platform.definitions import ALL_PIPELINES_JOB, job_name

    single = len(specs) == 1
    job = build_reconstructable_job(__name__, "pipeline_job", (job_name(specs[0].id) if single else ALL_PIPELINES_JOB,))
    keys = [dataset_key(s.destination.dataset) for s in specs]
    executor = {"multiprocess": {"max_concurrent": parallel}} if parallel > 1 else {"in_process": {}}
    invocation = uuid.uuid4().hex
    instance = DagsterInstance.get()
    outcome: dict = {}

    def work() -> None:
        result = execute_job(
            job,
            instance,
            run_config={
                "loggers": QUIET_CONSOLE,
                **({} if single else {"execution": {"config": executor}}),
                **(
                    {"ops": {key.to_python_identifier(): {"config": {"full_refresh": True}} for key in keys}}
                    if full_refresh
                    else {}
                ),
            },
            tags={"etl/invocation": invocation, "etl/trigger": "cli", **({"etl/full_refresh": "true"} if full_refresh else {})},
            asset_selection=None if single else keys,
        )
        outcome["success"] = result.success

    steps = {
        dataset_key(s.destination.dataset).to_python_identifier(): PipelineStatus(s.id, s.destination.dataset) for s in specs
    }
    worker = threading.Thread(target=work, name="dagster-run")
    worker.start()
    follow(worker, RunFollower(instance, invocation, steps), console)
    worker.join()
    ordered = sorted(steps.values(), key=lambda s: [p.id for p in specs].index(s.pipeline))
    console.print(summary_table(ordered))
    checks = checks_table(ordered)
    if checks is not None:
        console.print(checks)
    return bool(outcome.get("success")), ordered


__all__ = ["pipeline_job", "run_through_dagster"]
