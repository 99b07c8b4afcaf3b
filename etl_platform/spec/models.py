"""Typed models of a pipeline spec: the one schema for YAML files and Python declarations.

Every model forbids unknown keys, so a typo is an error at load time rather than a silently
ignored setting. Transforms are single-key mappings (`- cast: {...}`), dispatched on their key
so that an error names the transform it belongs to.
"""

from __future__ import annotations

import codecs
import datetime
import re
import zoneinfo
from pathlib import Path
from typing import Annotated, Any, Literal

import duckdb
import sqlglot
import sqlglot.errors
from croniter import croniter
from pydantic import BaseModel, ConfigDict, Discriminator, Field, PrivateAttr, StringConstraints, Tag, model_validator

from etl_platform.quality.rules import QualitySpec
from etl_platform.types import LOGICAL_TYPES, is_logical_type

Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=63)]
DatasetName = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$", max_length=127)]
ColumnName = Annotated[str, StringConstraints(min_length=1, max_length=63)]
# Dagster's rules for asset tags, checked here so a bad tag is a pipeline-file error with a line.
TagKey = Annotated[str, StringConstraints(pattern=r"^([A-Za-z0-9_.-]{1,63}/)?[A-Za-z0-9_.-]{1,63}$")]
TagValue = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{0,63}$")]


class Strict(BaseModel):
    """Base for spec models: unknown keys are errors, values are not coerced across types."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def sql_expression(text: str) -> str:
    """Validate one SQL expression with DuckDB's own parser (the engine that evaluates it) at load time.

    It is parsed in parentheses, as the steps evaluate it, so text that would close the
    expression and add a query (`x > 0 UNION ALL SELECT ...`) is refused here, not at run time.
    """
    if ";" in text:
        raise ValueError(f"expected one expression such as `amount > 0`, got {text!r}")
    try:
        duckdb.extract_statements(f"SELECT ({text}) FROM chunk")
    except duckdb.ParserException as exc:
        detail = str(exc).splitlines()[0].removeprefix("Parser Error: ")
        raise ValueError(f"not a valid SQL expression: {text!r} ({detail})") from None
    return text


SqlExpression = Annotated[str, StringConstraints(min_length=1), Field(description="SQL expression (DuckDB dialect)")]


# --- sources ---------------------------------------------------------------------------------


class FileSourceBase(Strict):
    path: str | None = Field(
        None,
        description="File path or glob, relative to the landing zone, or s3://bucket/key...; "
        "omitted when a file_arrival trigger names where files arrive",
    )
    compression: Literal["auto", "none", "gzip", "bz2", "zip"] = "auto"


class CsvSource(FileSourceBase):
    type: Literal["csv"]
    delimiter: str = Field(",", min_length=1, max_length=1)
    quote_char: str | None = Field('"', min_length=1, max_length=1)
    encoding: str = "utf-8"
    header: bool = True
    columns: list[ColumnName] | None = Field(None, description="Column names for files without a header row")
    null_values: list[str] = Field(default_factory=lambda: [""])
    on_bad_line: Literal["quarantine", "fail"] = "quarantine"

    @model_validator(mode="after")
    def _check(self) -> CsvSource:
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise ValueError(f"unknown encoding {self.encoding!r}; use a Python codec name such as utf-8 or latin-1") from None
        if not self.header and not self.columns:
            raise ValueError("a CSV without a header row needs `columns: [...]` naming its columns")
        return self


class JsonSource(FileSourceBase):
    """A file holding one JSON array of objects."""

    type: Literal["json"]


class JsonLinesSource(FileSourceBase):
    type: Literal["jsonl"]
    on_bad_line: Literal["quarantine", "fail"] = "quarantine"


class ParquetSource(Strict):
    type: Literal["parquet"]
    path: str | None = Field(None, description="File path or glob, relative to the landing zone, or s3://bucket/key...")


DURATION = re.compile(r"^(\d+)\s*(s|m|h|d)$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class Incremental(Strict):
    """Read only rows whose cursor column is past the last load's high-water mark.

    Rows that commit late with a cursor value just below the mark are caught by reading again
    `lookback` below it; a merge on the primary key removes the overlap.
    """

    cursor: ColumnName = Field(description="a column that grows with every change: updated_at, an id")
    lookback: int | str = Field(
        0, description="re-read this far below the mark: '15m', '2h', '1d', or a number for numeric cursors"
    )

    @model_validator(mode="after")
    def _check(self) -> Incremental:
        if isinstance(self.lookback, str) and not DURATION.match(self.lookback):
            raise ValueError(f"lookback {self.lookback!r} is not a duration such as '90s', '15m', '2h' or '1d'")
        if isinstance(self.lookback, int) and self.lookback < 0:
            raise ValueError("lookback must not be negative")
        return self

    @property
    def lookback_value(self) -> int | datetime.timedelta:
        """A timedelta for durations, a plain number for numeric cursors."""
        if isinstance(self.lookback, str):
            amount, unit = DURATION.match(self.lookback).groups()
            return datetime.timedelta(seconds=int(amount) * _SECONDS[unit])
        return self.lookback


class SqlSource(Strict):
    type: Literal["sql"]
    url: str | None = Field(None, description="SQLAlchemy URL; `${VAR}` reads an environment variable; omitted = the warehouse")
    table: str | None = None
    query: str | None = None
    incremental: Incremental | None = None

    @model_validator(mode="after")
    def _check(self) -> SqlSource:
        if (self.table is None) == (self.query is None):
            raise ValueError("a sql source needs exactly one of `table` or `query`")
        if self.query is not None:
            try:
                sqlglot.parse_one(self.query, read="duckdb")
            except sqlglot.errors.ParseError as exc:
                raise ValueError(f"query does not parse: {exc.errors[0]['description']}") from None
        if self.url and re.search(r"://[^/@]*:[^/@${}]+@", self.url):
            raise ValueError("put the password in an environment variable and write the url as `${MY_DB_URL}`")
        return self


class FrameSourceSpec(Strict):
    """Rows returned by the pipeline's Python function (see assets.frames.frame_asset)."""

    type: Literal["frame"]


SOURCE_TYPES: dict[str, type[Strict]] = {
    "csv": CsvSource,
    "json": JsonSource,
    "jsonl": JsonLinesSource,
    "parquet": ParquetSource,
    "sql": SqlSource,
    "frame": FrameSourceSpec,
}

Source = Annotated[
    CsvSource | JsonSource | JsonLinesSource | ParquetSource | SqlSource | FrameSourceSpec, Field(discriminator="type")
]


# --- transforms ------------------------------------------------------------------------------


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

    @model_validator(mode="after")
    def _check(self) -> FilterStep:
        sql_expression(self.filter)
        return self


class DeriveStep(Strict):
    derive: dict[ColumnName, SqlExpression] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> DeriveStep:
        for expression in self.derive.values():
            sql_expression(expression)
        return self


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


class MaskSpec(Strict):
    method: Literal["sha256", "redact"]
    salt_secret: str = Field("ETL_PII_SALT", description="environment variable holding the salt")


class MaskStep(Strict):
    mask: dict[ColumnName, Literal["sha256", "redact"] | MaskSpec] = Field(min_length=1)

    def specs(self) -> dict[str, MaskSpec]:
        return {c: MaskSpec(method=m) if isinstance(m, str) else m for c, m in self.mask.items()}


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
        for value in (self.size, self.every):
            if value is not None and not DURATION.match(value):
                raise ValueError(f"{value!r} is not a duration such as '90s', '15m', '1h' or '1d'")
        if self.size_seconds % self.every_seconds:
            raise ValueError(f"`size` ({self.size}) must be a multiple of `every` ({self.every})")
        return self

    @staticmethod
    def _seconds(value: str) -> int:
        amount, unit = DURATION.match(value).groups()
        return int(amount) * _SECONDS[unit]

    @property
    def size_seconds(self) -> int:
        return self._seconds(self.size)

    @property
    def every_seconds(self) -> int:
        return self._seconds(self.every or self.size)


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
        taken = {"window_start", "window_end"} if self.window else set()
        clashes = sorted(set(self.measures) & (set(self.group_by) | taken))
        if clashes:
            raise ValueError(f"measure name(s) {clashes} are already output columns; rename them")
        if self.having:
            sql_expression(self.having)
        return self


class AggregateStep(Strict):
    aggregate: AggregateSpec


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


def _transform_kind(value: Any) -> str | None:
    if isinstance(value, dict) and len(value) == 1:
        return next(iter(value))
    if isinstance(value, Strict):
        return next(iter(type(value).model_fields))
    return None


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
        _transform_kind,
        custom_error_type="unknown_transform",
        custom_error_message=f"each transform is one key, one of: {', '.join(TRANSFORM_STEPS)}",
    ),
]


# --- destination, schedule, pipeline ---------------------------------------------------------

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

    @model_validator(mode="after")
    def _check(self) -> Destination:
        if self.write == "merge" and not self.primary_key:
            raise ValueError("write: merge needs `primary_key: [...]` naming the key columns")
        if self.write != "merge" and self.primary_key:
            raise ValueError("`primary_key` is used by write: merge only; remove it or set write: merge")
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


class Schedule(Strict):
    cron: str
    timezone: str = "UTC"

    @model_validator(mode="after")
    def _check(self) -> Schedule:
        if not croniter.is_valid(self.cron) or len(self.cron.split()) != 5:
            raise ValueError(f"{self.cron!r} is not a 5-field cron expression such as '0 2 * * *'")
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {self.timezone!r}; use an IANA name such as Europe/Berlin") from None
        return self


class FileArrival(Strict):
    """Run the pipeline when new or changed files arrive; each file is processed once per version."""

    bucket: str | None = Field(None, description="S3 bucket; omitted: the landing zone (a folder, or S3 in production)")
    prefix: str | None = Field(None, description="key prefix or folder to watch; omitted: the source's path")
    pattern: str = Field("*", description="glob below the prefix: *.csv, **/*.jsonl")
    interval_seconds: int = Field(10, ge=1, le=3600, description="how often the sensor lists the files")
    max_files_per_run: int = Field(100, ge=1, le=10_000)
    max_failures: int = Field(3, ge=1, le=100, description="failed runs before a file moves to the dead-letter prefix")
    dead_letter_prefix: str = Field("_dead_letter/", description="where failing files go, in the same store, error beside them")

    @model_validator(mode="after")
    def _check(self) -> FileArrival:
        if self.bucket is not None and self.prefix is None:
            raise ValueError("a file_arrival trigger with `bucket` needs `prefix` (use '' for the whole bucket)")
        if self.pattern != "*" and self.prefix is None:
            raise ValueError("`pattern` goes with `prefix`; without them the trigger watches the source's path (glob included)")
        return self

    @property
    def names_location(self) -> bool:
        return self.prefix is not None

    def location(self) -> str:
        """The watched files as a source path: `s3://bucket/prefix/pattern` or `prefix/pattern`."""
        prefix = self.prefix or ""
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        return f"s3://{self.bucket}/{prefix}{self.pattern}" if self.bucket else f"{prefix}{self.pattern}"


class FileArrivalTrigger(Strict):
    file_arrival: FileArrival = Field(default_factory=FileArrival)


class Webhook(Strict):
    """An outside system reports that `dataset` changed (Dagster's report_asset_materialization)."""

    dataset: DatasetName


class WebhookTrigger(Strict):
    webhook: Webhook


TRIGGER_KINDS = ("file_arrival", "webhook")

Trigger = Annotated[
    Annotated[FileArrivalTrigger, Tag("file_arrival")] | Annotated[WebhookTrigger, Tag("webhook")],
    Discriminator(
        _transform_kind,
        custom_error_type="unknown_trigger",
        custom_error_message=f"each trigger is one key, one of: {', '.join(TRIGGER_KINDS)}",
    ),
]


class SchemaPolicy(Strict):
    on_drift: Literal["fail", "warn", "evolve"] = Field(
        "warn", description="fail: stop before publishing; warn: report and go on; evolve: add new columns to the target"
    )


class Execution(Strict):
    chunk_rows: int | Literal["auto"] = Field(
        100_000, description="rows per streamed chunk (1,000 to 5,000,000), or auto: chosen from past loads"
    )

    @model_validator(mode="after")
    def _check(self) -> Execution:
        if self.chunk_rows != "auto" and not 1_000 <= self.chunk_rows <= 5_000_000:
            raise ValueError("chunk_rows must be between 1,000 and 5,000,000, or auto")
        return self


OWNER = re.compile(r"^(team:[A-Za-z0-9_-]+|[^@\s]+@[^@\s]+\.[^@\s]+)$")


class PipelineSpec(Strict):
    """One declared pipeline: source, ordered transforms, quality, destination and triggers."""

    id: Identifier
    description: str = ""
    group: Identifier = "default"
    owner: str | None = Field(None, description="an email address or team:name")
    tags: dict[TagKey, TagValue] = Field(default_factory=dict, description="letters, digits, _ . - only")
    tenant: Identifier | None = None
    source: Source
    transforms: list[Transform] = Field(default_factory=list)
    quality: QualitySpec = Field(default_factory=QualitySpec, description="quality rules and circuit breaker")
    destination: Destination
    dependencies: list[Identifier] = Field(default_factory=list)
    schedule: Schedule | None = None
    triggers: list[Trigger] = Field(default_factory=list)
    execution: Execution = Field(default_factory=Execution)
    schema_policy: SchemaPolicy = Field(default_factory=SchemaPolicy, alias="schema")

    _file: Path | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _check(self) -> PipelineSpec:
        if self.owner is not None and not OWNER.match(self.owner):
            raise ValueError(f"owner {self.owner!r} must be an email address or `team:name`")
        if self.id in self.dependencies:
            raise ValueError(f"pipeline {self.id!r} lists itself in `dependencies`")
        self._check_file_location()
        kinds = [next(iter(type(t).model_fields)) for t in self.transforms]
        first_whole = next((i for i, k in enumerate(kinds) if k in WHOLE_LOAD_STEPS), len(kinds))
        if kinds.count("detect_anomalies") > 1 or kinds.count("aggregate") > 1:
            raise ValueError("use at most one detect_anomalies and one aggregate step")
        if "aggregate" in kinds and kinds[-1] != "aggregate":
            raise ValueError("`aggregate` must be the last step: the steps after it would see groups, not records")
        late = [k for k in kinds[first_whole:] if k not in WHOLE_LOAD_STEPS]
        if late:
            raise ValueError(
                f"`{kinds[first_whole]}` sees the whole load, so it comes after the row-by-row transforms; move {late} before it"
            )
        incremental = getattr(self.source, "incremental", None)
        if incremental and incremental.lookback and self.destination.write != "merge":
            raise ValueError("an incremental source with `lookback` reads some rows twice: use write: merge with a primary_key")
        sql_rules = [r.check_name for r in self.quality.rules if r.rule in ("Unique", "CustomQuery")]
        if self.destination.is_file and sql_rules:
            raise ValueError(f"rules {sql_rules} query a warehouse table; a file destination supports the others")
        return self

    def _check_file_location(self) -> None:
        """Where the files are is said once: in `source.path`, or by the file_arrival trigger."""
        arrivals = [t.file_arrival for t in self.triggers if isinstance(t, FileArrivalTrigger)]
        if len(arrivals) > 1:
            raise ValueError("declare one file_arrival trigger per pipeline")
        path = getattr(self.source, "path", None)
        if self.source.type in ("sql", "frame"):
            if arrivals:
                raise ValueError(f"a file_arrival trigger needs a file source, not {self.source.type}")
            return
        if arrivals and arrivals[0].names_location:
            if path is not None:
                raise ValueError("say where the files are once: drop `source.path`, the file_arrival trigger names them")
        elif path is None:
            raise ValueError("`source.path` is required (or a file_arrival trigger with `prefix`)")

    @property
    def file_arrival(self) -> FileArrival | None:
        return next((t.file_arrival for t in self.triggers if isinstance(t, FileArrivalTrigger)), None)

    @property
    def file_path(self) -> str | None:
        """The path or URL glob a file source reads: `source.path`, or the trigger's location."""
        path = getattr(self.source, "path", None)
        if path is None and self.file_arrival is not None:
            return self.file_arrival.location()
        return path

    @property
    def streaming_transforms(self) -> list:
        """The row-by-row transforms, applied chunk by chunk."""
        return [t for t in self.transforms if next(iter(type(t).model_fields)) not in WHOLE_LOAD_STEPS]

    @property
    def whole_load_transforms(self) -> list:
        """The steps after them that see every row of the load at once (validated to come last)."""
        return self.transforms[len(self.streaming_transforms) :]

    @property
    def anomaly_detection(self) -> DetectAnomaliesSpec | None:
        return next((t.detect_anomalies for t in self.transforms if isinstance(t, DetectAnomaliesStep)), None)

    @property
    def webhook_datasets(self) -> list[str]:
        return [t.webhook.dataset for t in self.triggers if isinstance(t, WebhookTrigger)]

    @property
    def incremental_files(self) -> bool:
        """File sources of append and merge pipelines read only files not processed before; replace reads all."""
        return self.file_path is not None and self.destination.write != "replace"

    @property
    def file(self) -> Path | None:
        """The YAML file this pipeline was loaded from, or None for a Python declaration."""
        return self._file

    @property
    def origin(self) -> str:
        """Where the pipeline was declared, for error messages."""
        return str(self._file) if self._file else f"pipeline {self.id!r} (declared in Python)"
