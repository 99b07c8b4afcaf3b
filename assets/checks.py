"""Quality rules as Dagster asset checks: one check per rule, plus the circuit breaker.

The breaker and `error` dataset rules are blocking: when one fails, the asset's step fails and
nothing downstream runs in that run. Row-level rules report what they found (their failing rows
were quarantined); the breaker judges whether there were too many.
"""

from __future__ import annotations

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetKey, MetadataValue

from etl_platform.engine.whole_load import ANOMALY_RATE
from etl_platform.quality.audit import BREAKER, DRIFT, VOLUME, CheckOutcome, volume_description
from etl_platform.quality.model_validator import model_check_names
from etl_platform.spec import PipelineSpec


def check_specs(spec: PipelineSpec, key: AssetKey, model: type | None = None) -> list[AssetCheckSpec]:
    quality = spec.quality
    specs = [
        AssetCheckSpec(
            rule.check_name,
            asset=key,
            description=f"{rule.rule}: {rule.describe()} ({rule.severity})",
            blocking=not rule.is_row_rule and rule.severity == "error",
        )
        for rule in quality.rules
    ]
    if model is not None:
        specs += [AssetCheckSpec(name, asset=key, description=text) for name, text in model_check_names(model).items()]
    policy = spec.schema_policy.on_drift
    description = f"schema matches the latest registered version (on_drift: {policy})"
    specs.append(AssetCheckSpec(DRIFT, asset=key, description=description, blocking=policy == "fail"))
    if quality.volume:
        blocking = quality.volume.severity == "error"
        specs.append(AssetCheckSpec(VOLUME, asset=key, description=volume_description(quality.volume), blocking=blocking))
    anomalies = spec.anomaly_detection
    if anomalies is not None:
        description = f"at most {anomalies.max_rate:.1%} of rows tagged anomalous in {', '.join(anomalies.columns)}"
        specs.append(AssetCheckSpec(ANOMALY_RATE, asset=key, description=description, blocking=anomalies.severity == "error"))
    if quality.circuit_breaker:
        breaker = quality.circuit_breaker
        description = f"at most {breaker.error_threshold}% of rows fail (judged from {breaker.min_record_count} rows)"
        specs.append(AssetCheckSpec(BREAKER, asset=key, description=description, blocking=True))
    return specs


def check_result(outcome: CheckOutcome) -> AssetCheckResult:
    metadata: dict = {"rule": outcome.description}
    if outcome.rows_checked is not None:
        metadata["rows_checked"] = MetadataValue.int(outcome.rows_checked)
    if outcome.rows_failed is not None:
        metadata["rows_failing"] = MetadataValue.int(outcome.rows_failed)
    if outcome.failure_rate is not None:
        metadata["failure_rate"] = MetadataValue.float(round(outcome.failure_rate, 6))
    if outcome.samples:
        metadata["sample_failures"] = MetadataValue.json(outcome.samples)
    if outcome.detail:
        metadata["detail"] = outcome.detail
    return AssetCheckResult(
        check_name=outcome.name,
        passed=outcome.passed,
        severity=AssetCheckSeverity.ERROR if outcome.severity == "error" else AssetCheckSeverity.WARN,
        metadata=metadata,
    )
