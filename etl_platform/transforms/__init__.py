"""Transforms: build the ordered chain a pipeline declares and apply it to each chunk."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import pyarrow as pa

from etl_platform.spec.base import single_key
from etl_platform.spec.ml import CanonicalizeStep
from etl_platform.spec.pii import PiiSpec
from etl_platform.spec.steps import (
    CastStep,
    DeriveStep,
    DropNullsStep,
    FillNullsStep,
    FilterStep,
    LookupStep,
    MaskStep,
    NormalizeStep,
    RenameStep,
    SelectStep,
)
from etl_platform.spec.tenant import TenantSpec
from etl_platform.transforms.base import Rejected, StepOutput, TransformContext
from etl_platform.transforms.canonicalize import Canonicalize
from etl_platform.transforms.cast import Cast
from etl_platform.transforms.columns import DropNulls, FillNulls, Normalize, Rename, Select
from etl_platform.transforms.expressions import Derive, Filter
from etl_platform.transforms.lookup import Lookup
from etl_platform.transforms.mask import Mask
from etl_platform.transforms.pii import PiiGuard
from etl_platform.transforms.tenant import TenantColumn

__all__ = ["ChainOutput", "Rejected", "TransformChain", "TransformContext"]

_STEP_TYPES = {
    SelectStep: Select,
    RenameStep: Rename,
    CastStep: Cast,
    FilterStep: Filter,
    DeriveStep: Derive,
    LookupStep: Lookup,
    DropNullsStep: DropNulls,
    FillNullsStep: FillNulls,
    NormalizeStep: Normalize,
    MaskStep: Mask,
    CanonicalizeStep: Canonicalize,
}


class Step(Protocol):
    where: str

    def apply(self, table: pa.Table) -> StepOutput: ...


@dataclass
class ChainOutput:
    table: pa.Table
    rejected: list[tuple[str, Rejected]] = field(default_factory=list)
    filtered: int = 0


class TransformChain:
    """The pipeline's transforms in order; building it checks secrets and lookup datasets."""

    def __init__(self, steps: list, context: TransformContext, pii: PiiSpec | None = None, tenant: TenantSpec | None = None):
        self.steps: list[Step] = []
        self.names: list[str] = []
        for index, step in enumerate(steps):
            kind = single_key(step)
            where = f"{context.origin}: transforms[{index}] ({kind})"
            self.steps.append(_STEP_TYPES[type(step)](step, where, context))
            self.names.append(f"transforms[{index}].{kind}")
        if tenant is not None:
            self.steps.append(TenantColumn(tenant, f"{context.origin}: tenant"))
            self.names.append("tenant")
        if pii is not None and pii.detect:  # last: it judges the rows as they would be published
            self.steps.append(PiiGuard(pii, f"{context.origin}: pii", context))
            self.names.append("pii")

    def apply(self, table: pa.Table) -> ChainOutput:
        output = ChainOutput(table)
        for name, step in zip(self.names, self.steps, strict=True):
            result = step.apply(output.table)
            output.table = result.table
            output.rejected += [(name, r) for r in result.rejected]
            output.filtered += result.filtered
        return output
