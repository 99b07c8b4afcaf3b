"""The landing-zone resource: where raw input files arrive (a local folder, or an S3 prefix)."""

from __future__ import annotations

from dagster import ConfigurableResource
from dagster_aws.s3 import S3Resource
from pydantic import Field

from etl_platform.breaker import BreakerBoard
from etl_platform.stores import AllowedRoots, FileStore, open_store


class LandingZoneResource(ConfigurableResource):
    root: str = Field(description="Folder or s3://bucket/prefix that file sources' paths and triggers are relative to")
    allowed_roots: list[str] = Field(
        default_factory=list,
        description="Folders and s3://bucket/prefix URLs besides the landing zone that file sources may read (ETL_ALLOWED_ROOTS)",
    )
    s3: S3Resource

    def store(self, breakers: BreakerBoard) -> FileStore:
        """The landing zone, its S3 calls behind the process's breakers (the `breakers` resource)."""
        return open_store(self.root, self.s3.get_client, breakers)

    def roots(self) -> AllowedRoots:
        """Where file sources may read: the landing zone and the allowed roots (etl_platform.stores.roots)."""
        return AllowedRoots.of(self.root, self.allowed_roots)
