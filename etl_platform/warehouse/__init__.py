"""Open the warehouse named by a URL: postgresql://, mysql:// or mariadb://, duckdb:///path, sqlite:///path."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from etl_platform.breaker import BreakerBoard
from etl_platform.errors import WarehouseUnavailable, masked_url
from etl_platform.secrets import expand_references
from etl_platform.warehouse.base import Warehouse
from etl_platform.warehouse.metadata import QUARANTINE_SCHEMA
from etl_platform.warehouse.publish import PublishResult

__all__ = ["QUARANTINE_SCHEMA", "PublishResult", "Warehouse", "open_warehouse"]


def open_warehouse(url: str, breakers: BreakerBoard | None = None, secrets: Mapping[str, str] | None = None) -> Warehouse:
    """Connect to the warehouse; the URL's scheme picks the dialect.

    A server's connection goes through its breaker on `breakers`, the process's board (a run's,
    a sensor's); a one-off connection (a CLI query, a test) gets a board of its own. A password
    written as a reference (`postgresql://loader:${file:/run/secrets/pg}@host/db`) is resolved
    here, when the connection is made, from `secrets` (the settings' environment snapshot).
    """
    url = expand_references(url, secrets or {})
    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError:
        raise WarehouseUnavailable(
            f"ETL_WAREHOUSE_URL {masked_url(url)!r} is not a URL such as postgresql://user@host/db"
        ) from None
    if backend == "postgresql":
        from etl_platform.warehouse.postgres import PostgresWarehouse

        return PostgresWarehouse(url, breakers or BreakerBoard())
    if backend in ("mysql", "mariadb"):
        from etl_platform.warehouse.mariadb import MariaDBWarehouse

        return MariaDBWarehouse(url, breakers or BreakerBoard())
    if backend == "duckdb":
        from etl_platform.warehouse.duckdb import DuckDBWarehouse

        return DuckDBWarehouse(url)
    if backend == "sqlite":
        from etl_platform.warehouse.sqlite import SQLiteWarehouse

        return SQLiteWarehouse(url)
    raise WarehouseUnavailable(
        f"unsupported warehouse {backend!r} in ETL_WAREHOUSE_URL; use postgresql, mysql (mariadb), duckdb or sqlite"
    )
