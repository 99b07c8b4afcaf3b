"""File destinations (Parquet, CSV, JSON Lines) in the lake folder, written atomically.

A run writes into a hidden staging folder beside the dataset folder. Replace swaps the folders;
append moves the run's part files in under names derived from the input fingerprint, so
appending the same input again overwrites the same files instead of duplicating rows.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from etl_platform.destinations.staging import align
from etl_platform.spec.models import Destination as DestinationSpec
from etl_platform.warehouse import PublishResult, Warehouse
from etl_platform.warehouse.base import Audit

_SUFFIX = {"csv": ".csv", "jsonl": ".jsonl", "parquet": ".parquet"}
_STREAM_COMPRESSION = {"gzip": ("gzip", ".gz"), "bz2": ("bz2", ".bz2")}


class FileDestination:
    def __init__(self, spec: DestinationSpec, lake_dir: Path, warehouse: Warehouse, run_id: str):
        self.spec = spec
        self.warehouse = warehouse
        self.path = lake_dir / (spec.path or spec.dataset.replace(".", "/"))
        self.staging = self.path.parent / f".{self.path.name}.staging-{run_id}"
        self.schema: pa.Schema | None = None
        self._writer = None
        self._stream = None
        self._chunks = 0
        self._rows = 0

    def _file_name(self) -> str:
        compression = self.spec.compression or "none"
        suffix = _SUFFIX[self.spec.format]
        if self.spec.format != "parquet" and compression in _STREAM_COMPRESSION:
            suffix += _STREAM_COMPRESSION[compression][1]
        return f"part-0{suffix}"

    def _open(self, schema: pa.Schema) -> None:
        retired = self.path.parent / f".{self.path.name}.retired"
        if retired.exists() and not self.path.exists():
            os.replace(retired, self.path)  # a replace was killed between its two renames
        for leftover in self.path.parent.glob(f".{self.path.name}.staging-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        self.staging.mkdir(parents=True)
        self.schema = schema
        if self.spec.partition_by:
            return
        target = self.staging / self._file_name()
        if self.spec.format == "parquet":
            self._writer = pq.ParquetWriter(target, schema, compression=self.spec.compression or "zstd")
            return
        compression = _STREAM_COMPRESSION.get(self.spec.compression or "none", (None, ""))[0]
        self._stream = pa.output_stream(str(target), compression=compression)
        if self.spec.format == "csv":
            self._writer = pacsv.CSVWriter(self._stream, schema)

    def write(self, table: pa.Table) -> None:
        if self.schema is None:
            self._open(table.schema)
        table = align(table, self.schema)
        if self.spec.partition_by:
            pads.write_dataset(
                table,
                self.staging,
                format="parquet",
                partitioning=self.spec.partition_by,
                partitioning_flavor="hive",
                basename_template=f"part-{self._chunks}-{{i}}.parquet",
                existing_data_behavior="overwrite_or_ignore",
                file_options=pads.ParquetFileFormat().make_write_options(compression=self.spec.compression or "zstd"),
            )
        elif self.spec.format == "jsonl":
            for row in table.to_pylist():
                self._stream.write(orjson.dumps(row, default=str) + b"\n")
        else:
            self._writer.write_table(table)
        self._chunks += 1
        self._rows += len(table)

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._stream is not None and not self._stream.closed:
            self._stream.close()
        self._writer = self._stream = None

    def publish(self, ledger_row: dict, quarantined: Iterable[pa.Table], audit: Audit) -> PublishResult:
        """Swap (replace) or move part files in (append); record ledger and quarantine in the warehouse.

        Dataset rules on files are the ones judged from the stream (RowCount, Freshness): `audit`
        runs before the files move, so a failing one leaves the lake as it was.
        """
        self._close()
        dataset = self.spec.dataset
        fingerprint = ledger_row["fingerprint"]
        with self.warehouse.transaction():
            if self.spec.write == "append" and self.warehouse.already_loaded(dataset, fingerprint):
                self.discard()
                return PublishResult(0, None, "this input was already appended (load ledger)")
            audit(self.warehouse)  # a failing check rolls back before any file moves
            self._move_into_place(fingerprint)
            version = self.warehouse.record_load(dataset, ledger_row, quarantined)
        return PublishResult(self._rows, self._rows if self.spec.write == "replace" else None, schema_version=version)

    def _move_into_place(self, fingerprint: str) -> None:
        """Replace: swap the folders. Append: move the parts in under fingerprint-derived names."""
        if self.spec.write == "replace":
            retired = self.path.parent / f".{self.path.name}.retired"
            shutil.rmtree(retired, ignore_errors=True)
            if self.path.exists():
                os.replace(self.path, retired)
            os.replace(self.staging, self.path)
            shutil.rmtree(retired, ignore_errors=True)
            return
        for part in sorted(p for p in self.staging.rglob("*") if p.is_file()):
            relative = part.relative_to(self.staging)
            target = self.path / relative.parent / relative.name.replace("part-", f"part-{fingerprint[:16]}-", 1)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(part, target)
        shutil.rmtree(self.staging, ignore_errors=True)

    def discard(self) -> None:
        self._close()
        shutil.rmtree(self.staging, ignore_errors=True)
