"""Dagster metadata as plain Python values: what the CLI's tables, the catalog and lineage read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def plain_values(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """`{name: MetadataValue}` -> `{name: value}` (ints, JSON, TableSchema, ...); raw values pass through."""
    return {name: getattr(value, "value", value) for name, value in metadata.items()}
