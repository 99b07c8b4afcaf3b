"""Schema versions and drift: infer a schema, register versions, compare incoming data with them.

The Python API follows the seed roadmap's example:

    registry = SchemaRegistry()
    registry.register(infer_schema(record_1))
    is_drift, new_schema = registry.detect_drift(record_2)

Pipelines keep their versions in the warehouse (`_etl.schema_versions`, written in the publish
transaction) and compare every load's schema with the latest one; `schema: {on_drift: ...}`
decides what drift does.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

Schema = dict[str, str]  # column -> Arrow type name, in column order


def infer_schema(data: Any) -> Schema:
    """The schema of a record (dict), an Arrow table or schema, or a pandas/polars frame."""
    if isinstance(data, dict):
        data = pa.Table.from_pylist([data])
    elif hasattr(data, "to_arrow"):  # polars
        data = data.to_arrow()
    elif hasattr(data, "dtypes") and not isinstance(data, (pa.Table, pa.Schema)):  # pandas
        data = pa.Table.from_pandas(data, preserve_index=False)
    schema = data if isinstance(data, pa.Schema) else data.schema
    return {f.name: _type_name(f.type) for f in schema}


def _type_name(kind: pa.DataType) -> str:
    """Arrow's type name, with storage variants (large, dictionary-encoded) named as their logical type."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return "string"
    if pa.types.is_large_binary(kind):
        return "binary"
    return str(kind)


@dataclass(frozen=True)
class Drift:
    added: dict[str, str] = field(default_factory=dict)
    removed: dict[str, str] = field(default_factory=dict)
    changed: dict[str, tuple[str, str]] = field(default_factory=dict)
    renamed: dict[str, str] = field(default_factory=dict)  # likely renames: old name -> new name

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    @property
    def additive(self) -> bool:
        """Only new or dropped columns (which evolve can absorb); no type changes."""
        return not self.changed

    def describe(self) -> str:
        parts = []
        if self.added:
            parts.append("added " + ", ".join(f"{c} ({t})" for c, t in self.added.items()))
        if self.removed:
            parts.append("removed " + ", ".join(self.removed))
        if self.changed:
            parts.append("type changed " + ", ".join(f"{c} {a} -> {b}" for c, (a, b) in self.changed.items()))
        if self.renamed:
            parts.append("likely renamed " + ", ".join(f"{a} -> {b}" for a, b in self.renamed.items()))
        return "; ".join(parts) or "no drift"


def compare(old: Schema, new: Schema) -> Drift:
    """What changed from `old` to `new`; a removed and an added column of one type with similar names is a likely rename."""
    added = {c: t for c, t in new.items() if c not in old}
    removed = {c: t for c, t in old.items() if c not in new}
    changed = {c: (old[c], new[c]) for c in new if c in old and old[c] != new[c]}
    renamed = {}
    for gone, kind in removed.items():
        candidates = [c for c, t in added.items() if t == kind and c not in renamed.values()]
        best = difflib.get_close_matches(gone, candidates, n=1, cutoff=0.6)
        if best or (len(removed) == 1 and len(candidates) == 1):
            renamed[gone] = best[0] if best else candidates[0]
    return Drift(added, removed, changed, renamed)


class SchemaRegistry:
    """Versions of one dataset's schema, in memory (the warehouse keeps pipelines' versions)."""

    def __init__(self, versions: list[Schema] | None = None):
        self.versions: list[Schema] = list(versions or [])

    def register(self, schema: Schema) -> int:
        """Add a version if it differs from the latest; returns the current version number (1-based)."""
        if not self.versions or self.versions[-1] != schema:
            self.versions.append(dict(schema))
        return len(self.versions)

    @property
    def latest(self) -> Schema | None:
        return self.versions[-1] if self.versions else None

    def detect_drift(self, data: Any) -> tuple[bool, Schema]:
        """Whether `data`'s schema drifts from the latest version, and that schema."""
        schema = infer_schema(data)
        return (self.latest is not None and bool(compare(self.latest, schema))), schema
