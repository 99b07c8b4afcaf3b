"""The warehouse URL as the variables of dbt_project/profiles.yml.

ETL_WAREHOUSE_URL is the one setting that chooses the warehouse; dbt reads its connection from
these variables, so there is no second place where a user configures where the marts are built.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from etl_platform.errors import SpecError

# The warehouse URL's backend -> the target of dbt_project/profiles.yml that builds in it.
PROFILE_TARGETS = {"duckdb": "duckdb", "postgresql": "postgres"}
POSTGRES_OPTIONS = {"sslmode", "host"}


def dbt_profile_env(warehouse_url: str) -> dict[str, str]:
    """Environment variables that point dbt's profile at the warehouse `warehouse_url` names."""
    try:
        url = make_url(warehouse_url)
    except ArgumentError:
        raise SpecError(f"ETL_WAREHOUSE_URL {warehouse_url!r} is not a URL such as postgresql://user@host/db") from None
    backend = url.get_backend_name()
    if backend not in PROFILE_TARGETS:
        raise SpecError(
            f"the dbt layer builds models in DuckDB or PostgreSQL, not {backend!r} (ETL_WAREHOUSE_URL {warehouse_url!r}); "
            "point ETL_WAREHOUSE_URL at duckdb:///path or postgresql://user@host/db"
        )
    target = {"ETL_DBT_TARGET": PROFILE_TARGETS[backend]}
    if backend == "duckdb":
        if not url.database or url.database == ":memory:":
            raise SpecError(
                f"dbt needs the DuckDB warehouse in a file, not {warehouse_url!r}: use duckdb:///path/warehouse.duckdb"
            )
        return {**target, "ETL_DBT_DUCKDB_PATH": str(Path(url.database).resolve())}
    unknown = sorted(set(url.query) - POSTGRES_OPTIONS)
    if unknown:
        raise SpecError(
            f"ETL_WAREHOUSE_URL option(s) {', '.join(unknown)} are not passed on to dbt; "
            f"the dbt profile takes {', '.join(sorted(POSTGRES_OPTIONS))}"
        )
    return {
        **target,
        "ETL_DBT_PG_HOST": url.host or str(url.query.get("host") or "127.0.0.1"),
        "ETL_DBT_PG_PORT": str(url.port or 5432),
        "ETL_DBT_PG_USER": url.username or "postgres",
        "ETL_DBT_PG_PASSWORD": url.password or "",
        "ETL_DBT_PG_DATABASE": url.database or "",
        "ETL_DBT_PG_SSLMODE": str(url.query.get("sslmode") or "prefer"),
    }
