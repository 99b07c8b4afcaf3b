"""Dagster resources: where pipelines read from and publish to."""

from resources.embedding_model import EmbeddingModelResource
from resources.landing_zone import LandingZoneResource
from resources.warehouse import WarehouseResource

__all__ = ["EmbeddingModelResource", "LandingZoneResource", "WarehouseResource"]
