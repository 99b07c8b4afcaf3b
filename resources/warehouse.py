"""The warehouse resource: one URL chooses DuckDB (embedded), PostgreSQL or SQLite."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field
from sqlalchemy.engine import make_url


class WarehouseResource(ConfigurableResource):
    """Where pipelines publish: tables at `url`, file datasets under `lake_dir`."""

    url: str = Field(description="SQLAlchemy-style URL: duckdb:///path, postgresql://user@host/db, sqlite:///path")
    lake_dir: str = Field(description="Folder that file destinations (Parquet, CSV, JSON Lines) publish into")

    @property
    def kind(self) -> str:
        """The engine's name as Dagster shows it in asset kinds."""
        backend = make_url(self.url).get_backend_name()
        return {"postgresql": "postgres"}.get(backend, backend)

    @property
    def lake_path(self) -> Path:
        return Path(self.lake_dir)
