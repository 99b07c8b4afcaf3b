"""`etl doctor`: every check of a deployment in one command, a PASS or FAIL line each, with the fix."""

from __future__ import annotations

import sys

import click

from etl_platform.cli.common import EXIT_FAILED, EXIT_OK, registry, settings
from etl_platform.observability.findings import Finding


@click.command()
@click.option(
    "--skip",
    multiple=True,
    metavar="CHECK",
    help="Leave out a group of checks: warehouse, landing, lake, dbt, embedding, services, tenants, dagster, "
    "workers (repeatable; workers only with ETL_CELERY_BROKER set).",
)
def doctor(skip: tuple[str, ...]) -> None:
    """Check the deployment: warehouse, platform tables, Dagster instance, daemon, landing zone and lake,
    dbt project, embedding model, the servers the pipelines read from, the lake's free disk, the
    row-level security of every `isolation: rls` pipeline's table, and (with ETL_CELERY_BROKER set)
    the celery broker and a worker on each queue.

    Prints one line per check, PASS or FAIL with what to do. Exit code 0 if every check passed, 1 if not.
    """
    from etl_platform.instance.health import instance_findings
    from etl_platform.observability.health import engine_checks
    from etl_platform.stores.s3 import s3_client

    resolved = settings()
    checks = engine_checks(resolved, list(registry(resolved)), lambda: s3_client(resolved.s3_endpoint_url))
    checks["dagster"] = lambda: instance_findings(resolved.dagster_home)
    if resolved.celery_broker is not None:
        from etl_platform.instance.celery_health import celery_findings

        checks["workers"] = lambda: celery_findings(resolved.celery_broker)
    unknown = set(skip) - set(checks)
    if unknown:
        raise click.UsageError(f"--skip {', '.join(sorted(unknown))}: the checks are {', '.join(checks)}")
    shown: list[Finding] = []
    for name, check in checks.items():
        for finding in [] if name in skip else check():
            click.secho(finding.line(), fg="green" if finding.ok else "red")
            shown.append(finding)
    failed = [f for f in shown if not f.ok]
    click.echo(_summary(shown, failed))
    sys.exit(EXIT_FAILED if failed else EXIT_OK)


def _summary(shown: list[Finding], failed: list[Finding]) -> str:
    if not failed:
        return f"all {len(shown)} checks passed"
    return f"{len(failed)} of {len(shown)} checks failed: {', '.join(f.check for f in failed)}"
