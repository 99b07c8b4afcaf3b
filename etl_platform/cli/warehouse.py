"""`etl warehouse init`: create the platform's tables, and (`--roles`) the least-privilege PostgreSQL roles."""

from __future__ import annotations

import sys

import click
from sqlalchemy.engine import make_url

from etl_platform.cli.common import EXIT_FAILED, EXIT_OK, settings
from etl_platform.errors import EtlError
from etl_platform.warehouse import open_warehouse
from etl_platform.warehouse.metadata import ensure_metadata
from etl_platform.warehouse.roles import create_roles


@click.group()
def warehouse() -> None:
    """The warehouse at ETL_WAREHOUSE_URL."""


@warehouse.command()
@click.option("--roles", is_flag=True, help="Also create the loader, per-tenant reader and writer, Dagster roles (PostgreSQL).")
@click.option(
    "--prefix",
    default="etl",
    show_default=True,
    help="Roles are <prefix>_loader, <prefix>_reader_<tenant>, <prefix>_writer_<tenant>, <prefix>_dagster.",
)
@click.option("--tenant", "tenants", multiple=True, help="A tenant to create reader and writer roles for (repeatable).")
@click.option("--dagster-database", help="The database of the Dagster instance, which <prefix>_dagster may create in.")
def init(roles: bool, prefix: str, tenants: tuple[str, ...], dagster_database: str | None) -> None:
    """Create the platform's schemas and tables; with --roles, the role set and its grants.

    Idempotent: running it again adds only what is missing (run it again after a tenant's first load,
    so its reader may read the new schema or row-level-security table). An `isolation: rls` load
    publishes as <prefix>_writer_<tenant>, which the loader may SET ROLE to. --roles needs
    ETL_WAREHOUSE_URL to name a role that may create roles (an administrator): runs then connect
    as <prefix>_loader. Roles get no password here: set one with ALTER ROLE ... PASSWORD, and give
    it to the platform as a secret reference.
    """
    resolved = settings()
    try:
        connection = open_warehouse(resolved.warehouse_url, secrets=resolved.secrets)
        try:
            ensure_metadata(connection)
            if roles:
                database = make_url(connection.url).database or ""
                names = create_roles(connection, database, prefix, list(tenants), dagster_database)
                for job, name in names.items():
                    click.echo(f"{job}: {name}")
        finally:
            connection.close()
    except EtlError as exc:
        click.secho(str(exc), fg="red", err=True)
        sys.exit(EXIT_FAILED)
    click.echo("warehouse ready")
    sys.exit(EXIT_OK)
