"""The tenant on a pipeline's state rows: its processed-file records and its saved position.

Every checkpoint saves itself through the one `Checkpoint.save` of its source; rather than teach
each source about tenants, the publish names the load's tenant on the state rows this run wrote,
in the same transaction (docs/architecture.md, "A load"). A pipeline (or a partition, whose tenant
is its key) has one tenant, so a fixed tenant is all there is to name; a tenant taken from a
source column varies by row and leaves these rows without one.
"""

from __future__ import annotations

from etl_platform.warehouse.base import Warehouse
from etl_platform.warehouse.metadata import META_SCHEMA

STATE_TABLES = ("file_state", "source_checkpoint")


def stamp_tenant(target: Warehouse, pipeline: str, run_id: str, tenant: str) -> None:
    """Name `tenant` on the state rows that `run_id` wrote for `pipeline`."""
    for name in STATE_TABLES:
        table = target.relation(META_SCHEMA, name)
        target.execute(f"UPDATE {table} SET tenant = ? WHERE pipeline = ? AND run_id = ?", (tenant, pipeline, run_id))
