"""Audit a load before it is published: check outcomes, the circuit breaker, dataset-level rules.

Dataset-level rules run inside the publish transaction, after the load's rows are in the target
and before COMMIT, so they judge the dataset exactly as it would be published (for an append:
the target with the new rows; for a replace: the new rows alone). A failing `error` rule raises
QualityGateFailed, which rolls the transaction back: the target keeps its previous content.
"""

from __future__ import annotations

import datetime
import statistics
from dataclasses import dataclass, field, replace

import pyarrow as pa
import pyarrow.compute as pc

from etl_platform.errors import EtlError, TransformError, one_line
from etl_platform.quality.plan import (
    PlannedCheck,
    breaker_check,
    change_lag_check,
    drift_check,
    model_check,
    rule_check,
    volume_check,
)
from etl_platform.quality.schema_registry import Drift, Schema, compare
from etl_platform.quality.validator import SAMPLES, RuleStats
from etl_platform.spec.quality import CircuitBreaker, Rule, VolumeCheck
from etl_platform.spec.sources import MariadbCdcSource, PostgresCdcSource
from etl_platform.warehouse import Warehouse
from etl_platform.warehouse.base import USER_SQL_TIMEOUT_SECONDS
from etl_platform.warehouse.publish import recent_load_sizes


@dataclass
class CheckOutcome:
    """One planned check's verdict on one load: becomes a Dagster asset check result.

    Name, description, blocking and severity come from the check's plan (quality.plan), never
    written here, so a result always matches the asset check Dagster declared for it.
    """

    check: PlannedCheck
    passed: bool
    rows_checked: int | None = None
    rows_failed: int | None = None
    samples: list[dict] = field(default_factory=list)
    detail: str = ""

    @property
    def name(self) -> str:
        return self.check.name

    @property
    def description(self) -> str:
        return self.check.description

    @property
    def blocking(self) -> bool:
        return self.check.blocking

    @property
    def severity(self) -> str:
        return self.check.severity

    @property
    def failure_rate(self) -> float | None:
        if not self.rows_checked or self.rows_failed is None:
            return None
        return self.rows_failed / self.rows_checked


class QualityGateFailed(EtlError):
    """A blocking check failed: nothing was published. Carries every outcome for the asset checks."""

    def __init__(self, message: str, outcomes: list[CheckOutcome]):
        super().__init__(message)
        self.outcomes = outcomes
        self.report = None  # the run's LoadReport, attached by the runner


def row_outcome(check: PlannedCheck, stats: RuleStats, contained: bool) -> CheckOutcome:
    """A row check's verdict. The failing rows of an `error` check went to quarantine; when the breaker
    judged the load and found the quarantine within its limit, the check did its job: passed, with
    the counts. Red is kept for what needs a person: a tripped or unjudged breaker, a `warn` rule."""
    handled = contained and check.severity == "error" and stats.rows_failed > 0
    return CheckOutcome(
        check,
        passed=stats.rows_failed == 0 or handled,
        rows_checked=stats.rows_checked,
        rows_failed=stats.rows_failed,
        samples=stats.samples,
        detail=f"{stats.rows_failed:,} failing rows quarantined, within the circuit breaker's limit" if handled else "",
    )


def row_rule_outcomes(rules: list[Rule], stats: dict[str, RuleStats], contained: bool) -> list[CheckOutcome]:
    """Row-level rules: failing `error` rows were quarantined; `contained`: the breaker passed the load."""
    return [row_outcome(rule_check(rule), stats[rule.check_name], contained) for rule in rules if rule.is_row_rule]


def model_outcomes(names: dict[str, str], stats: dict[str, RuleStats], contained: bool) -> list[CheckOutcome]:
    """A Pandera model's checks: failing rows were quarantined, like an error rule's."""
    return [row_outcome(model_check(name, description), stats[name], contained) for name, description in names.items()]


def breaker_outcome(
    breaker: CircuitBreaker, rows_read: int, rows_published: int, quarantined_by_rule: dict[str, int], examples: dict[str, str]
) -> CheckOutcome:
    """Every quarantined row counts as failed: malformed lines, cast failures and error-rule failures.

    The detail names each rule's count and its first reason, so a tripped breaker says what to fix
    (a cast names its format) without a query.
    """
    rows_quarantined = sum(quarantined_by_rule.values())
    rate = 100 * rows_quarantined / rows_read if rows_read else 0.0
    judged = rows_read >= breaker.min_record_count
    over = judged and rate > breaker.error_threshold
    all_failed = breaker.fail_when_all_rows_fail and rows_quarantined > 0 and rows_published == 0
    by_rule = ", ".join(f"{rule} {n:,} ({100 * n / rows_read:.2f}%)" for rule, n in sorted(quarantined_by_rule.items()))
    firsts = "; ".join(f"{rule}: {examples[rule]}" for rule in sorted(quarantined_by_rule) if rule in examples)
    if all_failed and not over:
        detail = f"every one of the {rows_read:,} rows read failed or was filtered, nothing is left to publish"
    elif judged:
        detail = f"{rate:.2f}% of {rows_read:,} rows failed (threshold {breaker.error_threshold}%)"
    else:
        detail = f"{rows_read:,} rows read, fewer than min_record_count {breaker.min_record_count}: rate not judged"
    return CheckOutcome(
        breaker_check(breaker),
        passed=not (over or all_failed),
        rows_checked=rows_read,
        rows_failed=rows_quarantined,
        detail=detail + (f": {by_rule}" if by_rule else "") + (f"; first failure of each: {firsts}" if firsts else ""),
    )


def drift_outcome(policy: str, latest: tuple[int, Schema] | None, incoming: Schema) -> CheckOutcome:
    """The load's schema against the latest registered version, under the pipeline's drift policy."""
    drift = compare(latest[1], incoming) if latest else Drift()
    outcome = CheckOutcome(
        drift_check(policy),
        passed=not drift,
        detail=(f"against version {latest[0]}: {drift.describe()}" if latest else "first version of this dataset"),
    )
    if policy == "evolve" and drift and not drift.additive:
        outcome.check = replace(outcome.check, severity="error", blocking=True)  # the one escalation past the plan
        outcome.detail += "; evolve applies added and removed columns only, not type changes"
    return outcome


def volume_outcome(volume: VolumeCheck, rows: int, recent: list[int]) -> CheckOutcome:
    """This load's row count against the median of recent loads (not judged without enough history)."""
    outcome = CheckOutcome(volume_check(volume), passed=True, rows_checked=rows)
    if len(recent) < volume.min_history:
        outcome.detail = f"{rows:,} rows; {len(recent)} earlier loads, fewer than min_history {volume.min_history}: not judged"
        return outcome
    median = statistics.median(recent)
    low = median * volume.min_ratio
    high = median * volume.max_ratio if volume.max_ratio else None
    outcome.passed = rows >= low and (high is None or rows <= high)
    bounds = f"{low:,.0f} to {high:,.0f}" if high is not None else f"at least {low:,.0f}"
    outcome.detail = f"{rows:,} rows; median of the last {len(recent)} loads {median:,.0f}; expected {bounds}"
    return outcome


class DatasetAudit:
    """Dataset-level rules of one load: observes published chunks, then judges in the transaction."""

    def __init__(self, rules: list[Rule], dataset: str, origin: str, volume: VolumeCheck | None = None):
        self.volume = volume
        self.rules = [r for r in rules if not r.is_row_rule]
        self.dataset = dataset
        self.origin = origin
        self.rows = 0
        self.newest: dict[str, object] = {}

    def observe(self, table: pa.Table) -> None:
        """Called for each chunk as it is written: row count and newest values for Freshness."""
        if not self.rows:
            self._check_columns(table.schema)
        self.rows += len(table)
        for rule in self.rules:
            if rule.rule == "Freshness" and len(table):
                newest = pc.max(table[rule.field]).as_py()
                current = self.newest.get(rule.field)
                if newest is not None and (current is None or newest > current):
                    self.newest[rule.field] = newest

    def _check_columns(self, schema: pa.Schema) -> None:
        """Fail before the load streams on, not after, when a rule's column is missing or of the wrong type."""
        for rule in self.rules:
            for column in rule.columns():
                if column not in schema.names:
                    raise TransformError(f"{self.origin}: rule {rule.check_name} checks column '{column}', which the data lacks")
            if rule.rule == "Freshness" and not pa.types.is_temporal(schema.field(rule.field).type):
                kind = schema.field(rule.field).type
                raise TransformError(
                    f"{self.origin}: rule {rule.check_name} needs a date or timestamp column; '{rule.field}' is {kind}: "
                    f"add `cast: {{{rule.field}: timestamp}}`"
                )

    def judge(self, warehouse: Warehouse) -> list[CheckOutcome]:
        """Evaluate every dataset rule and the volume check (inside the publish transaction)."""
        outcomes = [self._judge(rule, warehouse) for rule in self.rules]
        if self.volume:
            recent = recent_load_sizes(warehouse, self.dataset, self.volume.history)
            outcomes.append(volume_outcome(self.volume, self.rows, recent))
        return outcomes

    def _judge(self, rule: Rule, warehouse: Warehouse) -> CheckOutcome:
        outcome = CheckOutcome(rule_check(rule), passed=True)
        if rule.rule == "RowCount":
            low, high = rule.bounds()
            outcome.rows_checked = self.rows
            outcome.passed = (low is None or self.rows >= low) and (high is None or self.rows <= high)
            outcome.detail = f"{self.rows:,} rows in this load"
        elif rule.rule == "Freshness":
            newest = self.newest.get(rule.field)
            now = datetime.datetime.now(datetime.UTC)
            if isinstance(newest, datetime.datetime) and newest.tzinfo is None:
                newest = newest.replace(tzinfo=datetime.UTC)
            elif isinstance(newest, datetime.date) and not isinstance(newest, datetime.datetime):
                newest = datetime.datetime.combine(newest, datetime.time(), datetime.UTC)
            outcome.passed = newest is not None and now - newest <= rule.age()
            outcome.detail = f"newest {rule.field}: {newest}" if newest is not None else f"no {rule.field} values in this load"
        elif rule.rule == "Unique":
            target = warehouse.target(self.dataset)
            keys = ", ".join(map(warehouse.quote, rule.columns()))
            present = " AND ".join(f"{warehouse.quote(c)} IS NOT NULL" for c in rule.columns())  # as SQL UNIQUE: nulls differ
            groups = f"SELECT {keys}, count(*) AS duplicates FROM {target} WHERE {present} GROUP BY {keys} HAVING count(*) > 1"
            outcome.rows_checked = warehouse.row_count(self.dataset)
            # PostgreSQL sums bigints into numeric: Dagster metadata and the breaker want a plain int.
            outcome.rows_failed = int(warehouse.query(f"SELECT coalesce(sum(duplicates), 0) FROM ({groups}) d")[0][0])
            outcome.samples = warehouse.read_arrow(f"{groups} LIMIT {SAMPLES}").to_pylist()
            outcome.passed = outcome.rows_failed == 0
        else:
            outcome.rows_failed, outcome.samples = self._custom_query(rule, warehouse)
            outcome.passed = outcome.rows_failed == 0
        return outcome

    def _custom_query(self, rule: Rule, warehouse: Warehouse) -> tuple[int, list[dict]]:
        """How many rows the user's query returns, and a sample: read-only, inside the publish transaction.

        The query goes in on lines of its own, so a trailing `--` comment cannot swallow the wrapper.
        """
        query = rule.query().replace("{dataset}", warehouse.target(self.dataset))
        try:
            with warehouse.read_only() as read:
                failing = int(read(f"SELECT count(*) AS failing FROM (\n{query}\n) failing").column(0)[0].as_py())
                samples = read(f"SELECT * FROM (\n{query}\n) failing LIMIT {SAMPLES}").to_pylist()
        except Exception as exc:  # the user's SQL: report it as their error, not ours
            raise _custom_query_failed(self.origin, rule, exc) from None
        return failing, samples


def _custom_query_failed(origin: str, rule: Rule, exc: Exception) -> EtlError:
    return EtlError(
        f"{origin}: quality rule {rule.check_name}: the query failed: {one_line(exc)}; fix `sql:` "
        "(a custom query is one SELECT returning the failing rows; it runs read-only, "
        f"at most {USER_SQL_TIMEOUT_SECONDS:.0f} s)"
    )


def gate_message(pipeline: str, run_id: str, failed: list[CheckOutcome]) -> str:
    """Which checks stopped the publish, by how much, and where the failing rows are."""
    parts = []
    for outcome in failed:
        numbers = outcome.detail or (f"{outcome.rows_failed:,} failing" if outcome.rows_failed is not None else "failed")
        parts.append(f"{outcome.name} ({outcome.description}): {numbers}")
    return (
        f"{pipeline}: quality gate failed, nothing was published: {'; '.join(parts)}. "
        f"Failing rows: SELECT * FROM _etl.quarantine WHERE run_id = '{run_id}'"
    )


def change_lag_outcome(source: PostgresCdcSource | MariadbCdcSource, lag: int | None) -> CheckOutcome:
    """How far the change-capture pipeline is behind once the run acknowledged: the WAL its replication
    slot holds (None: the slot is gone), or the GTID transactions its saved position is behind."""
    check = change_lag_check(source)
    if isinstance(source, MariadbCdcSource):
        behind = f"{lag} transactions behind the server's binlog (gtid_binlog_pos)"
        return CheckOutcome(check, lag <= source.lag_threshold_transactions, detail=behind)
    if lag is None:
        return CheckOutcome(check, False, detail="the replication slot does not exist: run with --full-refresh")
    return CheckOutcome(check, lag <= source.lag_threshold_bytes, detail=f"{lag} bytes of WAL behind the server")
