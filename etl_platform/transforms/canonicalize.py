"""canonicalize: replace messy values with items of a reference list, when similar enough.

Each distinct value is matched once per run (a cache shared by the transform threads). A value at
or above the threshold becomes its reference item; below it, the row is quarantined with the best
candidate and its score in the reason, or (on_miss: flag) kept unchanged. `<column>_similarity`
records every row's score, so a reviewer can sort by it.
"""

from __future__ import annotations

import threading

import pyarrow as pa

from etl_platform.ml.matching import EmbeddingMatcher, LlmMatcher, Match, Matcher
from etl_platform.spec.ml import CanonicalizeStep, CanonicalSpec
from etl_platform.tables import require_columns
from etl_platform.transforms.base import Rejected, StepOutput, TransformContext


class Canonicalize:
    def __init__(self, step: CanonicalizeStep, where: str, context: TransformContext):
        self.where = where
        self.specs = step.canonicalize
        self.context = context
        self._matchers: dict[str, Matcher] = {}
        self._cache: dict[str, dict[str, Match]] = {column: {} for column in self.specs}
        self._lock = threading.Lock()

    def _matcher(self, column: str, spec: CanonicalSpec) -> Matcher:
        with self._lock:
            if column not in self._matchers:
                self._matchers[column] = (
                    LlmMatcher(spec.reference, spec.llm, self.where, self.context.secrets, self.context.breakers)
                    if spec.provider == "llm"
                    else EmbeddingMatcher(spec.reference, self.context.embedder())
                )
            return self._matchers[column]

    def _matches(self, column: str, spec: CanonicalSpec, values: list[str | None]) -> list[Match | None]:
        cache = self._cache[column]
        new = sorted({v for v in values if v is not None and v not in cache and v not in spec.reference})
        if new:
            found = self._matcher(column, spec).match(new)
            with self._lock:
                cache.update(zip(new, found, strict=True))
        return [None if v is None else (v, 1.0) if v in spec.reference else cache[v] for v in values]

    def apply(self, table: pa.Table) -> StepOutput:
        require_columns(table, list(self.specs), self.where)
        rejected: list[Rejected] = []
        for column, spec in self.specs.items():
            values = [None if v is None else str(v) for v in table[column].to_pylist()]
            matches = self._matches(column, spec, values)
            accepted = [m is None or (m[0] is not None and m[1] >= spec.threshold) for m in matches]
            canonical = [m[0] if m is not None and ok else v for v, m, ok in zip(values, matches, accepted, strict=True)]
            table = table.set_column(table.column_names.index(column), column, pa.array(canonical, pa.string()))
            scores = pa.array([None if m is None else round(m[1], 4) for m in matches], pa.float64())
            table = table.append_column(f"{column}_similarity", scores)
            if spec.on_miss == "quarantine" and not all(accepted):
                missed = [i for i, ok in enumerate(accepted) if not ok]
                reasons = [
                    f"{values[i]!r}: the LLM's answer is not an item of the reference list"
                    if spec.provider == "llm"
                    else f"{values[i]!r} matches no item of the reference list well enough "
                    f"(best {matches[i][0]!r} at {matches[i][1]:.2f}, threshold {spec.threshold})"
                    for i in missed
                ]
                rejected.append(
                    Rejected(table.take(missed), "canonicalize", [column] * len(missed), [values[i] for i in missed], reasons)
                )
                table = table.filter(pa.array(accepted))
        return StepOutput(table, rejected)
