"""A pipeline's planned checks as Dagster asset checks, and its load's check outcomes as their results.

Which checks exist and which block is the plan's to say (etl_platform.quality.plan); here it
is only translated: a failing blocking check fails the asset's step, so nothing downstream runs.
"""

from __future__ import annotations

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetKey, MetadataValue

from etl_platform.quality.audit import CheckOutcome
from etl_platform.quality.plan import plan_checks
from etl_platform.spec import PipelineSpec


def check_specs(spec: PipelineSpec, key: AssetKey, model: type | None = None) -> list[AssetCheckSpec]:
    """The asset's checks, as planned by the engine (quality.plan), which also names its loads' results."""
    return [
        AssetCheckSpec(check.name, asset=key, description=check.description, blocking=check.blocking)
        for check in plan_checks(spec, model)
    ]


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
