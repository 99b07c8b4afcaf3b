"""Dagster resources: where pipelines read from and publish to."""

from resources.landing_zone import LandingZoneResource
from resources.warehouse import WarehouseResource

__all__ = ["LandingZoneResource", "WarehouseResource"]
