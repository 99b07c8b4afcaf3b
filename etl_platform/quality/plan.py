"""A pipeline's planned checks: the one declaration of every check's name, description, blocking and severity.

Dagster's asset check specs (assets/checks.py) and the engine's check outcomes (quality.audit,
engine.whole_load) are both made from these, so the checks an asset declares and the results its
loads report cannot drift apart. Each kind of check has one function here; `plan_checks` lists
them all for a spec, and each outcome builder calls the function of its own kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from etl_platform.quality.model_validator import model_check_names
from etl_platform.spec.ml import DetectAnomaliesSpec
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.spec.quality import CircuitBreaker, Rule, VolumeCheck
from etl_platform.spec.sources import CHANGE_CAPTURE_TYPES, MariadbCdcSource, PostgresCdcSource

BREAKER = "circuit_breaker"
VOLUME = "volume_anomaly"
DRIFT = "schema_drift"
ANOMALY_RATE = "anomaly_rate"
SLOT_LAG = "replication_slot_lag"
BINLOG_LAG = "binlog_lag"
TENANT_ISOLATION = "tenant_isolation"

Severity = Literal["error", "warn"]


@dataclass(frozen=True)
class PlannedCheck:
    """One check an asset declares; `blocking` failures stop the publish (and Dagster's downstream runs)."""

    name: str
    description: str
    blocking: bool
    severity: Severity


def rule_check(rule: Rule) -> PlannedCheck:
    """Row rules quarantine their failing rows (the breaker judges the load); failing `error` dataset rules block."""
    blocking = not rule.is_row_rule and rule.severity == "error"
    return PlannedCheck(rule.check_name, rule.describe(), blocking, rule.severity)


def model_check(name: str, description: str) -> PlannedCheck:
    """One of a Pandera model's checks (see model_check_names): failing rows are quarantined like an `error` row rule's."""
    return PlannedCheck(name, description, False, "error")


def drift_check(policy: str) -> PlannedCheck:
    """Under `fail`, drift stops the load; `evolve` still stops on a type change (its outcome escalates)."""
    blocking = policy == "fail"
    description = f"schema matches the latest registered version (on_drift: {policy})"
    return PlannedCheck(DRIFT, description, blocking, "error" if blocking else "warn")


def volume_check(volume: VolumeCheck) -> PlannedCheck:
    upper = f" and at most {volume.max_ratio}x" if volume.max_ratio else ""
    description = f"row count at least {volume.min_ratio}x{upper} the median of the last {volume.history} loads"
    return PlannedCheck(VOLUME, description, volume.severity == "error", volume.severity)


def anomaly_check(anomalies: DetectAnomaliesSpec) -> PlannedCheck:
    description = f"at most {anomalies.max_rate:.1%} of rows tagged anomalous in {', '.join(anomalies.columns)}"
    return PlannedCheck(ANOMALY_RATE, description, anomalies.severity == "error", anomalies.severity)


def breaker_check(breaker: CircuitBreaker) -> PlannedCheck:
    description = f"at most {breaker.error_threshold}% of rows fail (judged from {breaker.min_record_count} rows)"
    if breaker.fail_when_all_rows_fail:
        description += ", and not every row"
    return PlannedCheck(BREAKER, description, True, "error")


def slot_lag_check(threshold_bytes: int) -> PlannedCheck:
    """Change data capture: WAL the slot holds back after the run; a warning, since the data published is right."""
    return PlannedCheck(SLOT_LAG, f"the replication slot holds at most {threshold_bytes} bytes of WAL", False, "warn")


def binlog_lag_check(threshold_transactions: int) -> PlannedCheck:
    """MariaDB change data capture: GTID transactions the saved position is behind the server after the run.

    No slot holds the binlog back, so lag costs nothing until the binlog expires (expire_logs_days):
    then the changes since the position are gone and only a new snapshot recovers.
    """
    description = f"the saved GTID is at most {threshold_transactions} transactions behind the server's binlog"
    return PlannedCheck(BINLOG_LAG, description, False, "warn")


def change_lag_check(source: PostgresCdcSource | MariadbCdcSource) -> PlannedCheck:
    """The lag check of a change-capture source: the slot's WAL, or the binlog transactions behind."""
    if isinstance(source, MariadbCdcSource):
        return binlog_lag_check(source.lag_threshold_transactions)
    return slot_lag_check(source.lag_threshold_bytes)


def plan_checks(spec: PipelineSpec, model: type | None = None) -> list[PlannedCheck]:
    """Every check a load of `spec` (validated by the Pandera `model`, if any) reports, in a stable order."""
    quality = spec.quality
    checks = [rule_check(rule) for rule in quality.rules]
    if model is not None:
        checks += [model_check(name, text) for name, text in model_check_names(model).items()]
    checks.append(drift_check(spec.schema_policy.on_drift))
    if quality.volume:
        checks.append(volume_check(quality.volume))
    if spec.anomaly_detection is not None:
        checks.append(anomaly_check(spec.anomaly_detection))
    checks.append(breaker_check(quality.circuit_breaker))
    if spec.source.type in CHANGE_CAPTURE_TYPES:
        checks.append(change_lag_check(spec.source))
    if spec.tenancy is not None and spec.tenancy.isolation == "rls":
        checks.append(tenant_isolation_check())
    return checks


def tenant_isolation_check() -> PlannedCheck:
    """isolation: rls: row-level security binds the tenant's role (warehouse.rls_check), and the load
    holds no row of another tenant; either failure would leak rows, so it blocks. The description names
    no tenant: a partitioned pipeline's tenant is each partition's key."""
    description = "every row is the load's tenant's, and row-level security binds the role it publishes as"
    return PlannedCheck(TENANT_ISOLATION, description, True, "error")
