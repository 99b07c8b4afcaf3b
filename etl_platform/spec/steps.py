"""The transform steps a pipeline lists, in order: column and row steps, lookups, masking, and the ML steps.

A step is a single-key mapping (`- cast: {...}`); the `Transform` union dispatches on that key,
so an unknown key is one clear error and a bad option names the step it belongs to. The ML
steps' settings live in `spec/ml.py`; this module lists them with the others.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from etl_platform.spec.base import ColumnName, DatasetName, SqlExpression, Strict, single_key
from etl_platform.spec.ml import AggregateStep, CanonicalizeStep, DeduplicateStep, DetectAnomaliesStep
from etl_platform.types import LOGICAL_TYPES, is_logical_type


class CastTarget(Strict):
    type: str
    format: str | None = Field(None, description="strptime format for date and timestamp casts")


def _check_type(name: str) -> str:
    if not is_logical_type(name):
        raise ValueError(f"unknown type {name!r}; allowed: {', '.join(LOGICAL_TYPES)}")
    return name


class CastStep(Strict):
    cast: dict[ColumnName, str | CastTarget] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> CastStep:
        for target in self.cast.values():
            _check_type(target if isinstance(target, str) else target.type)
        return self

    def targets(self) -> dict[str, CastTarget]:
        return {c: CastTarget(type=t) if isinstance(t, str) else t for c, t in self.cast.items()}


class SelectStep(Strict):
    select: list[ColumnName] = Field(min_length=1)


class RenameStep(Strict):
    rename: dict[ColumnName, ColumnName] = Field(min_length=1)


class FilterStep(Strict):
    filter: SqlExpression


class DeriveStep(Strict):
    derive: dict[ColumnName, SqlExpression] = Field(min_length=1)


class LookupSpec(Strict):
    dataset: DatasetName
    on: ColumnName | list[ColumnName] | dict[ColumnName, ColumnName] = Field(
        description="join keys: a name, a list of names, or {column_here: column_in_dataset}"
    )
    columns: list[ColumnName] | dict[ColumnName, ColumnName] = Field(
        description="columns to add: names, or {column_in_dataset: new_name}"
    )

    def key_pairs(self) -> dict[str, str]:
        if isinstance(self.on, str):
            return {self.on: self.on}
        return dict(self.on) if isinstance(self.on, dict) else {c: c for c in self.on}

    def added_columns(self) -> dict[str, str]:
        return dict(self.columns) if isinstance(self.columns, dict) else {c: c for c in self.columns}


class LookupStep(Strict):
    lookup: LookupSpec


class DropNullsStep(Strict):
    drop_nulls: list[ColumnName] = Field(min_length=1)


class FillNullsStep(Strict):
    fill_nulls: dict[ColumnName, str | int | float | bool] = Field(min_length=1)


NormalizeOp = Literal["trim", "lower", "upper", "collapse_whitespace", "strip_accents"]


class NormalizeStep(Strict):
    normalize: dict[ColumnName, list[NormalizeOp]] = Field(min_length=1)


class MaskSpec(Strict):
    """sha256 with a salt, HMAC-SHA256 with a key (`hmac`: a low-entropy value cannot be found by hashing
    every candidate without the key), or redaction."""

    method: Literal["sha256", "hmac", "redact"]
    salt_secret: str = Field("ETL_PII_SALT", description="the salt (sha256) or key (hmac): a variable name or a secret reference")


class MaskStep(Strict):
    mask: dict[ColumnName, Literal["sha256", "redact"] | MaskSpec] = Field(min_length=1)

    def specs(self) -> dict[str, MaskSpec]:
        return {c: MaskSpec(method=m) if isinstance(m, str) else m for c, m in self.mask.items()}


# Steps that see the whole load at once, after every row-by-row step.
WHOLE_LOAD_STEPS = ("deduplicate", "detect_anomalies", "aggregate")


TRANSFORM_STEPS: dict[str, type[Strict]] = {
    "select": SelectStep,
    "rename": RenameStep,
    "cast": CastStep,
    "filter": FilterStep,
    "derive": DeriveStep,
    "lookup": LookupStep,
    "drop_nulls": DropNullsStep,
    "fill_nulls": FillNullsStep,
    "normalize": NormalizeStep,
    "mask": MaskStep,
    "canonicalize": CanonicalizeStep,
    "deduplicate": DeduplicateStep,
    "detect_anomalies": DetectAnomaliesStep,
    "aggregate": AggregateStep,
}


Transform = Annotated[
    Annotated[SelectStep, Tag("select")]
    | Annotated[RenameStep, Tag("rename")]
    | Annotated[CastStep, Tag("cast")]
    | Annotated[FilterStep, Tag("filter")]
    | Annotated[DeriveStep, Tag("derive")]
    | Annotated[LookupStep, Tag("lookup")]
    | Annotated[DropNullsStep, Tag("drop_nulls")]
    | Annotated[FillNullsStep, Tag("fill_nulls")]
    | Annotated[NormalizeStep, Tag("normalize")]
    | Annotated[MaskStep, Tag("mask")]
    | Annotated[CanonicalizeStep, Tag("canonicalize")]
    | Annotated[DeduplicateStep, Tag("deduplicate")]
    | Annotated[DetectAnomaliesStep, Tag("detect_anomalies")]
    | Annotated[AggregateStep, Tag("aggregate")],
    Discriminator(
        single_key,
        custom_error_type="unknown_transform",
        custom_error_message=f"each transform is one key, one of: {', '.join(TRANSFORM_STEPS)}",
    ),
]
