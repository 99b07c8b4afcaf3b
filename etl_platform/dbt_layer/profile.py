"""The warehouse URL as the variables of dbt_project/profiles.yml.

ETL_WAREHOUSE_URL is the one setting that chooses the warehouse; dbt reads its connection from
these variables, so there is no second place where a user configures where the marts are built.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from etl_platform.errors import SpecError

PROFILE_TARGETS = {"duckdb": "duckdb", "postgresql": "postgres"}


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
    if backend == "duckdb":
        return {"ETL_DBT_TARGET": "duckdb", "ETL_DBT_DUCKDB_PATH": str(Path(url.database or "").resolve())}
    return {
        "ETL_DBT_TARGET": "postgres",
        "ETL_DBT_PG_HOST": url.host or "127.0.0.1",
        "ETL_DBT_PG_PORT": str(url.port or 5432),
        "ETL_DBT_PG_USER": url.username or "postgres",
        "ETL_DBT_PG_PASSWORD": url.password or "",
        "ETL_DBT_PG_DATABASE": url.database or "",
    }
