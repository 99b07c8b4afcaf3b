"""What every `etl` command shares: settings, the registry, and exit codes."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from etl_platform.breaker import BreakerBoard
from etl_platform.errors import SpecError
from etl_platform.instance.home import ensure_dagster_home, open_instance
from etl_platform.settings import Settings
from etl_platform.spec import PipelineRegistry
from etl_platform.stores.roots import AllowedRoots
from etl_platform.stores.s3 import s3_client

if TYPE_CHECKING:
    from dagster import DagsterInstance

    from etl_platform.engine.environment import Environment

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def settings() -> Settings:
    """Settings from the environment, with the Dagster instance folder made if it is missing;
    a setting that is wrong (a warehouse URL without a scheme) ends the command with exit code 2."""
    try:
        resolved = Settings.from_env()
    except SpecError as exc:
        click.secho(str(exc), fg="red", err=True)
        sys.exit(EXIT_USAGE)
    ensure_dagster_home(resolved.dagster_home)
    return resolved


def instance(resolved: Settings) -> DagsterInstance:
    """The Dagster instance at the settings' DAGSTER_HOME (read from its folder; no variable is set)."""
    return open_instance(resolved.dagster_home)


def environment(resolved: Settings) -> Environment:
    # Imported here: the engine pulls in scikit-learn and torch, which `etl lineage` or `etl list` never need.
    from etl_platform.engine.environment import Environment

    return Environment.at(
        resolved.warehouse_url,
        resolved.landing,
        resolved.lake,
        lambda: s3_client(resolved.s3_endpoint_url),
        BreakerBoard(resolved.breakers),
        resolved.secrets,
        resolved.allowed_roots,
    )


def allowed_roots(resolved: Settings) -> AllowedRoots:
    """Where the deployment lets file sources read: the landing zone and ETL_ALLOWED_ROOTS."""
    return AllowedRoots.of(resolved.landing, resolved.allowed_roots)


def registry(resolved: Settings) -> PipelineRegistry:
    """Load the pipelines folder; an invalid one ends the command with exit code 2."""
    try:
        return PipelineRegistry.from_folder(resolved.pipelines_dir, roots=allowed_roots(resolved))
    except SpecError as exc:
        click.secho(str(exc), fg="red", err=True)
        sys.exit(EXIT_USAGE)
