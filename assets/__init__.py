"""Assets: pipeline specs become software-defined assets (one per published dataset)."""

from assets.factory import dataset_key, pipeline_asset

__all__ = ["dataset_key", "pipeline_asset"]
