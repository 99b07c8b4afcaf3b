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


BlockingMethod = Literal["exact", "prefix", "soundex", "metaphone", "nysiis", "neighbors"]
Comparison = Literal["hybrid", "embedding", "characters"]


class BlockingKey(Strict):
    """One blocking rule: rows whose keys agree on every column of it are candidate pairs.

    The rules of a `blocking` list are OR-ed: a pair is compared when any rule finds it, so a typo
    in one column does not hide a duplicate that another rule still catches. `neighbors` finds
    each row's nearest rows by the embedding of its columns (within the blocks of `within`, when
    given), which catches what no key spells alike.
    """

    column: ColumnName | list[ColumnName] = Field(description="one column, or several whose keys must all agree")
    method: BlockingMethod = "exact"
    length: int = Field(3, ge=1, le=50, description="characters of a `prefix` key")
    neighbors: int | None = Field(None, ge=1, le=200, description="`neighbors`: rows per row; default fuzzy.neighbors")
    within: BlockingKey | None = Field(None, description="`neighbors`: search only rows sharing this key")

    @property
    def columns(self) -> list[str]:
        return [self.column] if isinstance(self.column, str) else list(self.column)

    @model_validator(mode="after")
    def _check(self) -> BlockingKey:
        if self.method != "neighbors" and (self.neighbors is not None or self.within is not None):
            raise ValueError("`neighbors` and `within` belong to a rule of method: neighbors")
        if self.within is not None and self.within.method == "neighbors":
            raise ValueError("`within` is a key (exact, prefix or phonetic), not another neighbors rule")
        return self


class FuzzyMatch(Strict):
    """Fuzzy duplicates: blocking finds candidate pairs, comparison levels per field judge them.

    Without `threshold`, the Fellegi-Sunter model is estimated from the load itself (u from random
    pairs, m and the share of matches by expectation maximisation) and pairs match at
    `match_probability`; with `threshold`, the weighted mean of the field similarities decides.
    """

    fields: dict[ColumnName, float] = Field(
        min_length=1, description="text columns compared, with weights (the weights count only with `threshold`)"
    )
    threshold: float | None = Field(
        None, gt=0, le=1, description="explicit: the weighted mean similarity at which two rows are duplicates"
    )
    match_probability: float = Field(0.9, gt=0, lt=1, description="estimated model: the match probability that merges")
    levels: tuple[float, float] = Field(
        (0.92, 0.8), description="similarity bounds of the `high` and `mid` comparison levels below `exact`"
    )
    blocking: list[BlockingKey] = Field(
        default_factory=list, description="rules OR-ed; none: each row's nearest neighbours by all fields"
    )
    neighbors: int = Field(10, ge=1, le=200, description="nearest neighbours per row of a `neighbors` rule")
    swappable: list[tuple[ColumnName, ColumnName]] = Field(
        default_factory=list, description="pairs of fields whose values may be swapped, e.g. [[first_name, last_name]]"
    )
    compare: Comparison | dict[ColumnName, Comparison] = Field(
        "hybrid",
        description="per-field similarity: embedding cosine (meaning), Jaro-Winkler (typos), or the larger of both; "
        "one for all fields or one per field (unnamed fields: hybrid)",
    )

    def comparison(self, field: str) -> Comparison:
        return self.compare.get(field, "hybrid") if isinstance(self.compare, dict) else self.compare

    @property
    def rules(self) -> list[BlockingKey]:
        """The blocking rules; without any, every row's nearest neighbours by all fields."""
        return self.blocking or [BlockingKey(column=list(self.fields), method="neighbors")]

    @model_validator(mode="after")
    def _check(self) -> FuzzyMatch:
        if any(weight <= 0 for weight in self.fields.values()):
            raise ValueError("field weights must be positive")
        unknown = sorted({c for pair in self.swappable for c in pair} - set(self.fields))
        if unknown:
            raise ValueError(f"swappable fields {unknown} are not in `fields`")
        if isinstance(self.compare, dict) and sorted(set(self.compare) - set(self.fields)):
            raise ValueError(f"compare names fields {sorted(set(self.compare) - set(self.fields))} that are not in `fields`")
        if not 0 < self.levels[1] < self.levels[0] < 1:
            raise ValueError("levels are [high, mid] similarities with 0 < mid < high < 1, e.g. [0.92, 0.8]")
        if self.threshold is not None and "match_probability" in self.model_fields_set:
            raise ValueError("give `threshold` (explicit weights) or `match_probability` (estimated model), not both")
        return self


class DeduplicateSpec(Strict):
    keys: list[ColumnName] = Field(default_factory=list, description="exact match on these columns, normalized")
    fuzzy: FuzzyMatch | None = None
    strategy: Literal["keep_first", "keep_last", "keep_best_quality", "merge"] = "keep_first"
    against_target: bool = Field(
        False, description="also match against the rows the destination table holds: a new duplicate of one is dropped"
    )

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
