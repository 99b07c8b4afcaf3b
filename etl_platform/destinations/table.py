"""A warehouse table destination: stage, then publish in one transaction."""

from __future__ import annotations

import pyarrow as pa

from etl_platform.destinations.staging import StagingTable
from etl_platform.spec.models import Destination as DestinationSpec
from etl_platform.warehouse import PublishResult, Warehouse


class TableDestination:
    def __init__(self, spec: DestinationSpec, warehouse: Warehouse, staging_name: str):
        self.spec = spec
        self.warehouse = warehouse
        self.staging = StagingTable(warehouse, staging_name)

    @property
    def schema(self) -> pa.Schema | None:
        return self.staging.schema

    def write(self, table: pa.Table) -> None:
        self.staging.write(table)

    def publish(self, ledger_row: dict, quarantine_staging: str | None) -> PublishResult:
        return self.warehouse.publish(
            self.spec.dataset,
            self.staging.name,
            self.spec.write,
            self.spec.primary_key,
            ledger_row,
            quarantine_staging,
        )

    def discard(self) -> None:
        self.staging.drop()
