"""Where a pipeline publishes: a warehouse table (append, replace or merge) or files in the lake."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from etl_platform.spec.base import ColumnName, DatasetName, Strict

FILE_COMPRESSIONS = {
    "csv": ("none", "gzip", "bz2"),
    "jsonl": ("none", "gzip", "bz2"),
    "parquet": ("none", "snappy", "zstd", "gzip"),
}


class Destination(Strict):
    dataset: DatasetName = Field(description="published dataset: `schema.table`; also the asset key")
    write: Literal["append", "replace", "merge"] = "append"
    primary_key: list[ColumnName] = Field(default_factory=list)
    format: Literal["csv", "jsonl", "parquet"] | None = Field(None, description="set for a file destination")
    path: str | None = Field(None, description="file destination folder, relative to the lake")
    partition_by: list[ColumnName] = Field(default_factory=list)
    compression: str | None = None
    on_changed_file: Literal["fail", "reload", "append"] = Field(
        "fail",
        description="append from files: what a file appended before, whose content changed other than by new lines "
        "at its end, does: fail (stop, naming the file), reload (replace the rows it gave), append (append it again)",
    )

    @model_validator(mode="after")
    def _check(self) -> Destination:
        if self.write == "merge" and not self.primary_key:
            raise ValueError("write: merge needs `primary_key: [...]` naming the key columns")
        if self.write != "merge" and self.primary_key:
            raise ValueError("`primary_key` is used by write: merge only; remove it or set write: merge")
        if "on_changed_file" in self.model_fields_set and self.write != "append":
            raise ValueError("`on_changed_file` applies to write: append (replace and merge load a changed file as it is now)")
        if self.on_changed_file == "reload" and self.format is not None:
            raise ValueError("on_changed_file: reload deletes a file's earlier rows from a warehouse table; use fail or append")
        if self.format is None:
            for key in ("path", "partition_by", "compression"):
                if getattr(self, key):
                    raise ValueError(f"`{key}` applies to file destinations; add `format: parquet|csv|jsonl`")
            return self
        if self.write == "merge":
            raise ValueError("file destinations support write: append or replace; merge needs a warehouse table")
        allowed = FILE_COMPRESSIONS[self.format]
        if self.compression is not None and self.compression not in allowed:
            raise ValueError(
                f"compression {self.compression!r} is not available for {self.format}; allowed: {', '.join(allowed)}"
            )
        return self

    @property
    def is_file(self) -> bool:
        return self.format is not None
