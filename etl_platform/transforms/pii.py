"""The `pii:` guard: the last streaming step, so it sees the rows as they would be published.

Each column is judged once, on the first chunk where it holds values, by `etl infer`'s profiler
(`ml.inference.profile_column`): a column is PII-looking when most of its values are emails, phone
numbers, card numbers, national ids or IP addresses. Already-masked columns (hex digests,
`[REDACTED]`) match none of these, so a pipeline that masks its PII passes.
"""

from __future__ import annotations

import threading

import pyarrow as pa

from etl_platform.errors import TransformError
from etl_platform.ml.inference import profile_column
from etl_platform.spec.pii import PiiSpec
from etl_platform.spec.steps import MaskSpec, MaskStep
from etl_platform.transforms.base import StepOutput, TransformContext
from etl_platform.transforms.mask import Mask


class PiiGuard:
    def __init__(self, spec: PiiSpec, where: str, context: TransformContext):
        self.spec, self.where, self.context = spec, where, context
        self._lock = threading.Lock()
        self._mask: Mask | None = None
        self._judged: set[str] = set()
        self._methods: dict[str, str] = {}  # the PII-looking columns found so far, with their mask method

    def _judge(self, table: pa.Table) -> None:
        """Judge each column the first time it holds values, and fail or extend the mask for what it finds.

        Once per column, not once per load: a REST page or a stream message can bring a column the
        first chunk did not have, and a chunk of deletes holds no values to judge.
        """
        found = {}
        for name in table.column_names:
            if (
                name in self._judged
                or name in self.spec.ignore
                or name.startswith("_etl")
                or table[name].null_count == len(table)
            ):
                continue
            self._judged.add(name)
            profile = profile_column(name, table[name])
            if profile.pii:
                found[name] = profile
        if found and self.spec.action == "fail":
            described = ", ".join(f"'{c}' ({p.semantic}, {p.semantic_confidence:.0%} of values)" for c, p in found.items())
            raise TransformError(
                f"{self.where}: columns {described} look like PII and would be published unmasked; nothing was "
                f"published. Fix: add a `mask` step for them, set `pii: {{action: mask}}` or `redact`, or list "
                f"columns that are not PII in `pii: {{ignore: [...]}}`"
            )
        if found:
            self._methods.update({c: p.pii if self.spec.action == "mask" else "redact" for c, p in found.items()})
            masks = {c: MaskSpec(method=m, salt_secret=self.spec.salt_secret) for c, m in self._methods.items()}
            self._mask = Mask(MaskStep(mask=masks), self.where, self.context)

    def apply(self, table: pa.Table) -> StepOutput:
        if len(table):
            with self._lock:
                self._judge(table)
        if self._mask is None:
            return StepOutput(table)
        present = [c for c in self._methods if c in table.column_names]
        return self._mask.apply(table) if len(present) == len(self._methods) else self._masked_part(table, present)

    def _masked_part(self, table: pa.Table, present: list[str]) -> StepOutput:
        """A chunk that lacks some masked columns (a REST page without them): mask the ones it has."""
        if not present:
            return StepOutput(table)
        masks = {c: MaskSpec(method=self._methods[c], salt_secret=self.spec.salt_secret) for c in present}
        return Mask(MaskStep(mask=masks), self.where, self.context).apply(table)
