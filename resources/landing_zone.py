"""The landing-zone resource: where raw input files arrive (a local folder, or an S3 prefix)."""

from __future__ import annotations

from dagster import ConfigurableResource
from dagster_aws.s3 import S3Resource
from pydantic import Field

from etl_platform.breaker import BreakerBoard
from etl_platform.stores import FileStore, open_store


class LandingZoneResource(ConfigurableResource):
    root: str = Field(description="Folder or s3://bucket/prefix that file sources' paths and triggers are relative to")
    s3: S3Resource

    def store(self, breakers: BreakerBoard) -> FileStore:
        """The landing zone, its S3 calls behind the process's breakers (the `breakers` resource)."""
        return open_store(self.root, self.s3.get_client, breakers)
