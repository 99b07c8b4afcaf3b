"""The landing-zone resource: where raw input files arrive (a local folder by default)."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from etl_platform.sources import LocalLandingZone


class LandingZoneResource(ConfigurableResource):
    root: str = Field(description="Folder that file sources' paths and globs are relative to")

    def zone(self) -> LocalLandingZone:
        return LocalLandingZone(Path(self.root))
