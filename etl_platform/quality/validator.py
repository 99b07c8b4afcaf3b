"""Row-level rules compiled to a Pandera (polars backend) schema and applied lazily to each chunk.

Lazy validation reports every failing row and rule of a chunk at once. Rows failing an
`error` rule leave the chunk for quarantine, with every rule they broke in the reason; `warn`
rules only count. Nulls pass every check but NotNull, as in Pandera.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandera.polars as pa_polars
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from etl_platform.errors import TransformError
from etl_platform.ml.quality_score import quality_scores
from etl_platform.sources.base import SOURCE_FILE, SOURCE_LINE
from etl_platform.spec.quality import Rule
from etl_platform.transforms.base import Rejected, StepOutput

SAMPLES = 10
# The polars type that rule Type casts to, for each of spec.quality.RULE_TYPES.
POLARS_TYPES = {"int": pl.Int64, "float": pl.Float64, "bool": pl.Boolean, "date": pl.Date, "timestamp": pl.Datetime}


@dataclass
class RuleStats:
    """What one row-level rule saw over a whole run: rows checked, failing, first samples."""

    rows_checked: int = 0
    rows_failed: int = 0
    samples: list[dict] = field(default_factory=list)

    def merge(self, other: RuleStats) -> None:
        self.rows_checked += other.rows_checked
        self.rows_failed += other.rows_failed
        self.samples += other.samples[: SAMPLES - len(self.samples)]


def _column_check(rule: Rule, name: str) -> pa_polars.Check:
    """The Pandera check for one row rule, named after the rule so failures map back to it."""

    def expression(build):
        return pa_polars.Check(lambda data: data.lazyframe.select(build(pl.col(data.key))), name=name)

    low, high = rule.bounds()
    if rule.rule == "Range":
        if low is not None and high is not None:
            return pa_polars.Check.in_range(low, high, include_min=rule.inclusive, include_max=rule.inclusive, name=name)
        if low is not None:
            return (pa_polars.Check.ge if rule.inclusive else pa_polars.Check.gt)(low, name=name)
        return (pa_polars.Check.le if rule.inclusive else pa_polars.Check.lt)(high, name=name)
    if rule.rule in ("Regex", "Email"):
        pattern = f"^(?:{rule.regex()})$"
        return expression(lambda column: column.cast(pl.String).str.contains(pattern))
    if rule.rule == "IsIn":
        return pa_polars.Check.isin(rule.allowed_values(), name=name)
    if rule.rule == "Length":
        return pa_polars.Check.str_length(low, high, name=name)
    if rule.rule == "Type":
        target = POLARS_TYPES[rule.type_name()]
        return expression(lambda column: column.cast(target, strict=False).is_not_null())
    return expression(rule.custom_check)


class RowValidator:
    """The pipeline's row rules as one Pandera schema; `apply` splits a chunk into pass and fail."""

    def __init__(self, rules: list[Rule], where: str, score_column: str | None = None):
        self.rules = [r for r in rules if r.is_row_rule]
        self.where = where
        self.score_column = score_column  # add each row's quality score (etl_platform.ml.quality_score)
        # Pandera reports a failure by column and check position; these lists map it back to the rule.
        self.checks: dict[str, list[Rule]] = {}
        self.not_null: dict[str, Rule] = {}
        for rule in self.rules:
            self.checks.setdefault(rule.field, [])
            if rule.rule == "NotNull":
                self.not_null[rule.field] = rule
            else:
                self.checks[rule.field].append(rule)
        self.schema = pa_polars.DataFrameSchema(
            {
                column: pa_polars.Column(
                    checks=[_column_check(r, r.check_name) for r in rules],
                    nullable=column not in self.not_null,
                    required=True,
                )
                for column, rules in self.checks.items()
            },
            strict=False,
        )

    def apply(self, table: pa.Table) -> tuple[StepOutput, dict[str, RuleStats]]:
        missing = [c for c in self.schema.columns if c not in table.column_names]
        if missing:
            rules = [r.check_name for r in self.rules if r.field in missing]
            raise TransformError(f"{self.where}: rule(s) {rules} check column(s) {missing}, which the data does not have")
        stats = {rule.check_name: RuleStats(rows_checked=len(table)) for rule in self.rules}
        try:
            self.schema.validate(pl.from_arrow(table), lazy=True)
            failures = []
        except pa_polars.errors.SchemaErrors as errors:
            failures = errors.failure_cases.select("failure_case", "column", "check_number", "index").to_dicts()
        failing_rows: dict[int, list[Failure]] = {}
        for failure in failures:
            column, number = failure["column"], failure["check_number"]
            if failure["index"] is None:  # the check could not run on the column at all (its type)
                detail = str(failure["failure_case"]).splitlines()[0]
                raise TransformError(
                    f"{self.where}: a rule on '{column}' cannot check its values ({detail}); "
                    f"the column is {table.schema.field(column).type}: add a `cast` before the rule"
                )
            rule = self.not_null[column] if number is None else self.checks[column][number]
            failing_rows.setdefault(failure["index"], []).append(
                Failure(rule.check_name, rule.field, failure["failure_case"], rule.describe(), rule.severity)
            )
        if self.score_column:
            broken = {row: len(failed) for row, failed in failing_rows.items()}
            table = table.append_column(self.score_column, quality_scores(table, broken, len(self.rules)))
        if not failing_rows:
            return StepOutput(table), stats
        return split_failures(table, failing_rows, stats)


@dataclass(frozen=True)
class Failure:
    """One check a row broke: which, on what column and value, in words, and how severe."""

    check: str
    column: str | None
    value: str | None
    text: str
    severity: str = "error"


def split_failures(
    table: pa.Table, failing_rows: dict[int, list[Failure]], stats: dict[str, RuleStats]
) -> tuple[StepOutput, dict[str, RuleStats]]:
    """Count failures per check (with samples) and move rows that broke an error check to quarantine."""
    for index, broken in sorted(failing_rows.items()):
        for failure in broken:
            check_stats = stats[failure.check]
            check_stats.rows_failed += 1
            if len(check_stats.samples) < SAMPLES:
                check_stats.samples.append(
                    {
                        "value": failure.value,
                        "source_file": str(table[SOURCE_FILE][index]),
                        "line": table[SOURCE_LINE][index].as_py(),
                    }
                )
    # One quarantine record per rejected row, filed under the first error check it broke.
    groups: dict[str, list[int]] = {}
    details: dict[int, tuple[str | None, str | None, str]] = {}
    for index, broken in sorted(failing_rows.items()):
        errors_only = [f for f in broken if f.severity == "error"]
        if not errors_only:
            continue
        reason = "; ".join(f"{f.check}: {f.text} (value {f.value!r})" for f in errors_only)
        details[index] = (errors_only[0].column, errors_only[0].value, reason)
        groups.setdefault(errors_only[0].check, []).append(index)
    if not details:
        return StepOutput(table), stats
    rejected = [
        Rejected(
            table.take(pa.array(indices)),
            check,
            [details[i][0] for i in indices],
            [details[i][1] for i in indices],
            [details[i][2] for i in indices],
        )
        for check, indices in groups.items()
    ]
    failed = pa.array([False] * len(table)).to_numpy(zero_copy_only=False).copy()
    failed[list(details)] = True
    return StepOutput(table.filter(pc.invert(pa.array(failed))), rejected), stats
