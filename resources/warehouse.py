"""The warehouse resource: one URL chooses DuckDB (embedded), PostgreSQL or SQLite."""

from __future__ import annotations

from dagster import ConfigurableResource
from dagster_aws.s3 import S3Resource
from pydantic import Field
from sqlalchemy.engine import make_url

from etl_platform.breaker import BreakerBoard
from etl_platform.stores import FileStore, open_store


class WarehouseResource(ConfigurableResource):
    """Where pipelines publish: tables at `url`, file datasets under `lake`."""

    url: str = Field(description="SQLAlchemy-style URL: duckdb:///path, postgresql://user@host/db, sqlite:///path")
    lake: str = Field(description="Folder or s3://bucket/prefix that file destinations (Parquet, CSV, JSON Lines) publish into")
    s3: S3Resource

    @property
    def kind(self) -> str:
        """The engine's name as Dagster shows it in asset kinds."""
        backend = make_url(self.url).get_backend_name()
        return {"postgresql": "postgres"}.get(backend, backend)

    def lake_store(self, breakers: BreakerBoard) -> FileStore:
        """The lake, its S3 calls behind the process's breakers (the `breakers` resource)."""
        return open_store(self.lake, self.s3.get_client, breakers)
