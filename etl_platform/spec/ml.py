"""Settings of the steps the ML package runs: canonicalize, deduplicate, detect_anomalies and aggregate.

Kept apart from the plain column steps because they carry the most options (providers,
thresholds, blocking keys, windows); `spec/steps.py` puts them into the one list of steps.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from etl_platform.spec.base import ColumnName, SqlExpression, Strict, parse_duration
from etl_platform.spec.expressions import parse_expression


class LlmProvider(Strict):
    """An OpenAI-compatible chat-completions endpoint; its answers must be items of the reference list."""

    url: str = Field(description="e.g. ${LLM_URL}: the base URL, /chat/completions is appended")
    model: str
    api_key_secret: str | None = Field(None, description="environment variable holding the API key")


class CanonicalSpec(Strict):
    """Map messy values to a reference list by similarity; values below the threshold are never replaced."""

    reference: list[str] = Field(min_length=1, description="the canonical values")
    threshold: float = Field(0.85, gt=0, le=1)
    on_miss: Literal["quarantine", "flag"] = Field(
        "quarantine", description="below the threshold: quarantine the row, or keep the value and flag it"
    )
    provider: Literal["embedding", "llm"] = "embedding"
    llm: LlmProvider | None = None

    @model_validator(mode="after")
    def _check(self) -> CanonicalSpec:
        if (self.provider == "llm") != (self.llm is not None):
            raise ValueError("provider: llm needs an `llm: {url, model}` section, and only it does")
        return self


class CanonicalizeStep(Strict):
    canonicalize: dict[ColumnName, CanonicalSpec] = Field(min_length=1)


class BlockingKey(Strict):
    """Rows are compared only with rows of the same block: equal values, prefixes or Soundex codes."""

    column: ColumnName
    method: Literal["exact", "prefix", "soundex"] = "exact"
    length: int = Field(3, ge=1, le=50, description="characters of a `prefix` key")


class FuzzyMatch(Strict):
    fields: dict[ColumnName, float] = Field(min_length=1, description="text columns compared by embedding, with weights")
    threshold: float = Field(0.9, gt=0, le=1, description="weighted mean field similarity at which two rows are duplicates")
    blocking: list[BlockingKey] = Field(default_factory=list, description="without blocking every row is a candidate")
    neighbors: int = Field(10, ge=1, le=200, description="nearest neighbours per row considered as candidates")
    swappable: list[tuple[ColumnName, ColumnName]] = Field(
        default_factory=list, description="pairs of fields whose values may be swapped, e.g. [[first_name, last_name]]"
    )
    compare: Literal["hybrid", "embedding", "characters"] = Field(
        "hybrid",
        description="per-field similarity: embedding cosine (meaning), Jaro-Winkler (typos), or the larger of both",
    )

    @model_validator(mode="after")
    def _check(self) -> FuzzyMatch:
        if any(weight <= 0 for weight in self.fields.values()):
            raise ValueError("field weights must be positive")
        unknown = sorted({c for pair in self.swappable for c in pair} - set(self.fields))
        if unknown:
            raise ValueError(f"swappable fields {unknown} are not in `fields`")
        return self


class DeduplicateSpec(Strict):
    keys: list[ColumnName] = Field(default_factory=list, description="exact match on these columns, normalized")
    fuzzy: FuzzyMatch | None = None
    strategy: Literal["keep_first", "keep_last", "keep_best_quality", "merge"] = "keep_first"

    @model_validator(mode="after")
    def _check(self) -> DeduplicateSpec:
        if not self.keys and self.fuzzy is None:
            raise ValueError("deduplicate needs `keys` (exact), `fuzzy` (embeddings), or both")
        return self


class DeduplicateStep(Strict):
    """Needs the whole load: it runs after the row-by-row transforms, on every row at once."""

    deduplicate: DeduplicateSpec


class DetectAnomaliesSpec(Strict):
    """Tag unusual rows (never drop them): Isolation Forest over the columns, robust z-scores and IQR fences per column."""

    columns: list[ColumnName] = Field(min_length=1, description="numeric columns")
    methods: list[Literal["isolation_forest", "zscore", "iqr"]] = Field(
        default_factory=lambda: ["isolation_forest", "zscore", "iqr"], min_length=1
    )
    contamination: float | Literal["auto"] = Field(
        0.01, description="Isolation Forest's expected share of anomalies ('auto' tags far more on clean data)"
    )
    z_threshold: float = Field(3.5, gt=0, description="robust z-score (median and MAD) beyond which a value is unusual")
    iqr_factor: float = Field(1.5, gt=0, description="IQR multiples beyond the quartiles")
    max_rate: float = Field(0.05, ge=0, le=1, description="the anomaly_rate check fails above this share of rows")
    severity: Literal["warn", "error"] = "warn"

    @model_validator(mode="after")
    def _check(self) -> DetectAnomaliesSpec:
        if isinstance(self.contamination, float) and not 0 < self.contamination <= 0.5:
            raise ValueError("contamination must be in (0, 0.5], or 'auto'")
        return self


class DetectAnomaliesStep(Strict):
    detect_anomalies: DetectAnomaliesSpec


AggregateFunction = Literal["sum", "mean", "count", "count_distinct", "min", "max"]


class TimeWindow(Strict):
    """Windows over a timestamp column: tumbling (`every` omitted) or sliding (a new window every `every`)."""

    column: ColumnName
    size: str = Field(description="window length: '90s', '15m', '1h', '1d'")
    every: str | None = Field(None, description="start a window this often; omitted: tumbling windows of `size`")

    @model_validator(mode="after")
    def _check(self) -> TimeWindow:
        if self.size_seconds % self.every_seconds:
            raise ValueError(f"`size` ({self.size}) must be a multiple of `every` ({self.every})")
        return self

    @property
    def size_seconds(self) -> int:
        return int(parse_duration(self.size).total_seconds())

    @property
    def every_seconds(self) -> int:
        return int(parse_duration(self.every or self.size).total_seconds())


class AggregateSpec(Strict):
    group_by: list[ColumnName] = Field(default_factory=list)
    measures: dict[ColumnName, dict[AggregateFunction, ColumnName]] = Field(
        min_length=1, description="output column: {function: input column}, e.g. revenue: {sum: amount}; count: '*'"
    )
    having: SqlExpression | None = Field(None, description="keep groups where this holds, over the output column names")
    window: TimeWindow | None = None

    @model_validator(mode="after")
    def _check(self) -> AggregateSpec:
        for name, measure in self.measures.items():
            if len(measure) != 1:
                raise ValueError(f"measure {name!r} needs exactly one function, e.g. {{sum: amount}}")
        taken = ["window_start", "window_end"] if self.window else []
        clashes = sorted(set(self.measures) & {*self.group_by, *taken})
        if clashes:
            raise ValueError(f"measure name(s) {clashes} are already output columns; rename them")
        outputs = [*taken, *self.group_by, *self.measures]
        unknown = parse_expression(self.having).unknown_columns(outputs) if self.having else []
        if unknown:
            raise ValueError(f"having reads {', '.join(map(repr, unknown))}; it may use the output columns {outputs}")
        return self


class AggregateStep(Strict):
    aggregate: AggregateSpec
