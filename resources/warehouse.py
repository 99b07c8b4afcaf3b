"""The warehouse resource: one URL chooses DuckDB (embedded), PostgreSQL or SQLite.

The URL may hold the warehouse's password, so it is not a config value: a resource's config
values are defaults in the code location's repository snapshot, which the webserver serves to
whoever opens the UI (the Launchpad shows them). The URL reaches the resource as a plain-object
dependency instead, made from the settings when the code location loads, in every process that
loads it (a run's included), and never serialized. The config holds the masked form, for the UI.
"""

# No `from __future__ import annotations`: Dagster reads `ResourceDependency[...]` from the class's
# evaluated annotations to tell a dependency from a config field.
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from dagster import ConfigurableResource, ResourceDependency
from dagster_aws.s3 import S3Resource
from pydantic import Field
from sqlalchemy.engine import make_url

from etl_platform.breaker import BreakerBoard
from etl_platform.errors import masked_url
from etl_platform.secrets import expand_references
from etl_platform.stores import FileStore, open_store
from etl_platform.warehouse import Warehouse, open_warehouse
from etl_platform.warehouse.metadata import ensure_metadata


@dataclass(frozen=True)
class WarehouseSecret:
    """The warehouse URL, password included or referenced, and the environment snapshot a reference
    is resolved from (etl_platform.secrets); its repr shows the masked form only."""

    url: str = field(repr=False)
    environment: Mapping[str, str] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        return f"WarehouseSecret({masked_url(self.url)!r})"


class WarehouseResource(ConfigurableResource):
    """Where pipelines publish: tables at the warehouse URL, file datasets under `lake`."""

    display_url: str = Field(description="The warehouse's SQLAlchemy-style URL, its password masked")
    lake: str = Field(description="Folder or s3://bucket/prefix that file destinations (Parquet, CSV, JSON Lines) publish into")
    s3: S3Resource
    secret: ResourceDependency[WarehouseSecret]

    @classmethod
    def at(cls, url: str, lake: str, s3: S3Resource, environment: Mapping[str, str] | None = None) -> "WarehouseResource":
        """The resource for the warehouse at `url`: the masked URL as config, the URL itself as a dependency."""
        return cls(display_url=masked_url(url), lake=lake, s3=s3, secret=WarehouseSecret(url, environment or {}))

    @property
    def url(self) -> str:
        """The URL to connect with, password included (a referenced one resolved now, at run time): never shown."""
        return expand_references(self.secret.url, self.secret.environment)

    @property
    def dialect(self) -> str:
        """The engine's dialect name (postgresql, mariadb, duckdb, sqlite), from the URL as written: nothing is resolved."""
        backend = make_url(self.secret.url).get_backend_name()
        return {"mysql": "mariadb"}.get(backend, backend)

    @property
    def kind(self) -> str:
        """The engine's name as Dagster shows it in asset kinds."""
        return {"postgresql": "postgres"}.get(self.dialect, self.dialect)

    def lake_store(self, breakers: BreakerBoard) -> FileStore:
        """The lake, its S3 calls behind the process's breakers (the `breakers` resource)."""
        return open_store(self.lake, self.s3.get_client, breakers)

    @contextmanager
    def platform_tables(self, breakers: BreakerBoard) -> Iterator[Warehouse]:
        """A connection with the `_etl` tables in place, closed afterwards: where the sensors read the
        state the publishes saved (processed files, saved positions)."""
        store = open_warehouse(self.url, breakers)
        try:
            ensure_metadata(store)
            yield store
        finally:
            store.close()
