"""File destinations (Parquet, CSV, JSON Lines) in the lake: a local folder or an S3 prefix.

A run writes its parts into a local staging folder; publishing hands the folder to the lake's
store (etl_platform.stores), which swaps folders locally and uploads then writes a manifest on
S3. With `partition_by`, rows go to Hive-style folders (`dt=2026-11-22/`), one open writer per
partition, and the partition columns live in the folder names rather than in the files.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from etl_platform.destinations.staging import align
from etl_platform.spec.destinations import Destination as DestinationSpec
from etl_platform.stores import FileStore
from etl_platform.warehouse import PublishResult, Warehouse
from etl_platform.warehouse.ledger import held_already
from etl_platform.warehouse.publish import Audit, record_load

_SUFFIX = {"csv": ".csv", "jsonl": ".jsonl", "parquet": ".parquet"}
_STREAM_COMPRESSION = {"gzip": ("gzip", ".gz"), "bz2": ("bz2", ".bz2")}


class PartWriter:
    """One output file of the destination's format and compression, written chunk by chunk."""

    def __init__(self, path: Path, spec: DestinationSpec, schema: pa.Schema):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = self._stream = None
        if spec.format == "parquet":
            self._writer = pq.ParquetWriter(path, schema, compression=spec.compression or "zstd")
            return
        self._stream = pa.output_stream(str(path), compression=_STREAM_COMPRESSION.get(spec.compression or "none", (None,))[0])
        if spec.format == "csv":
            self._writer = pacsv.CSVWriter(self._stream, schema)

    def write(self, table: pa.Table) -> None:
        if self._writer is not None:
            self._writer.write_table(table)
        else:
            for row in table.to_pylist():
                self._stream.write(orjson.dumps(row, default=str) + b"\n")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._stream is not None and not self._stream.closed:
            self._stream.close()


def part_name(spec: DestinationSpec) -> str:
    suffix = _SUFFIX[spec.format]
    if spec.format != "parquet" and spec.compression in _STREAM_COMPRESSION:
        suffix += _STREAM_COMPRESSION[spec.compression][1]
    return f"part-0{suffix}"


def tagged_part(path: str, tag: str) -> str:
    """`dt=x/part-0.csv` -> `dt=x/part-<tag>-0.csv`: only the file name changes."""
    folder, slash, name = path.rpartition("/")
    return f"{folder}{slash}part-{tag}-{name.removeprefix('part-')}"


def partition_folder(columns: list[str], values: tuple) -> str:
    """Hive-style folder for one partition: `dt=2026-11-22/country=DE`."""
    return "/".join(
        f"{c}={quote(str(v) if v is not None else '__HIVE_DEFAULT_PARTITION__', safe='')}"
        for c, v in zip(columns, values, strict=True)
    )


class FileDestination:
    def __init__(self, spec: DestinationSpec, lake: FileStore, warehouse: Warehouse, run_tag: str):
        self.spec = spec
        self.lake = lake
        self.warehouse = warehouse
        self.run_tag = run_tag
        self.prefix = spec.path or spec.dataset.replace(".", "/")
        self.staging: Path | None = None
        self.schema: pa.Schema | None = None
        self._parts: dict[str, PartWriter] = {}
        self._rows = 0

    def _claim(self, run_tag: str) -> str:
        """The name of a run's staging, which the run claims (warehouse.locks): as for a staging table."""
        return f"{self.warehouse.staging_prefix(self.spec.dataset)}{run_tag}"

    def write(self, table: pa.Table) -> None:
        if self.schema is None:
            self.warehouse.locks.claim(self._claim(self.run_tag))
            self.staging = self.lake.staging_folder(
                self.prefix, self.run_tag, lambda tag: self.warehouse.locks.claimed(self._claim(tag))
            )
            self.schema = table.schema
        table = align(table, self.schema)
        self._rows += len(table)
        columns = self.spec.partition_by
        if not columns:
            self._part("", table.schema).write(table)
            return
        data = table.drop_columns(columns)
        # Partition values as their folder text: NaN is "nan", equal to itself; null stays null.
        labels = [pc.cast(table[c], pa.string()) for c in columns]
        for values in set(zip(*(label.to_pylist() for label in labels), strict=True)):
            masks = [self._equals(label, value) for label, value in zip(labels, values, strict=True)]
            self._part(partition_folder(columns, values), data.schema).write(data.filter(functools.reduce(pc.and_, masks)))

    @staticmethod
    def _equals(label: pa.ChunkedArray, value: str | None) -> pa.ChunkedArray:
        return pc.is_null(label) if value is None else pc.fill_null(pc.equal(label, value), False)

    def _part(self, folder: str, schema: pa.Schema) -> PartWriter:
        if folder not in self._parts:
            self._parts[folder] = PartWriter(self.staging / folder / part_name(self.spec), self.spec, schema)
        return self._parts[folder]

    def _close(self) -> None:
        for part in self._parts.values():
            part.close()
        self._parts.clear()

    def publish(self, ledger_row: dict, quarantined: Iterable[pa.Table], audit: Audit) -> PublishResult:
        """Replace or append the parts; ledger, state and quarantine commit in the warehouse with them.

        Dataset rules on files are the ones judged from the stream (RowCount, Freshness): `audit`
        runs before the files move, so a failing one leaves the lake as it was. The files move
        inside the warehouse transaction, so a failed move rolls the ledger back with it.
        """
        self._close()
        dataset = self.spec.dataset
        fingerprint = ledger_row["fingerprint"]
        with self.warehouse.publishing(dataset):
            if self.spec.write == "append" and held_already(self.warehouse, ledger_row):
                self.discard()
                return PublishResult(0, None, "this input was already appended (load ledger)")
            audit(self.warehouse)  # a failing check rolls back before any file moves
            tag = fingerprint[:16] if self.spec.write == "append" else self.run_tag
            self.lake.publish_folder(
                self.staging,
                self.prefix,
                replace=self.spec.write == "replace",
                rename=lambda path: tagged_part(path, tag),
            )
            self.staging = None
            version = record_load(self.warehouse, dataset, ledger_row, quarantined)
        return PublishResult(self._rows, self._rows if self.spec.write == "replace" else None, schema_version=version)

    def discard(self) -> None:
        self._close()
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None
        self.warehouse.locks.release(self._claim(self.run_tag))
