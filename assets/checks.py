"""A pipeline's planned checks as Dagster asset checks, and its load's check outcomes as their results.

Which checks exist and which block is the plan's to say (etl_platform.quality.plan); here it
is only translated: a failing blocking check fails the asset's step, so nothing downstream runs.

A run that publishes nothing leaves the dataset as it was, and so the verdicts on it: it reports
each check's last judged result again (`carried_results`). Otherwise Dagster would record its
planned checks as skipped or execution-failed, and `all_deps_blocking_checks_passed` would hold
every dependent until the pipeline published again.
"""

from __future__ import annotations

from collections.abc import Iterable

from dagster import AssetCheckKey, AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetKey, DagsterInstance, MetadataValue
from dagster._core.storage.asset_check_execution_record import COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES

from etl_platform.quality.audit import CheckOutcome
from etl_platform.quality.plan import plan_checks
from etl_platform.spec import PipelineSpec

# Metadata of a result reported again by a run that judged nothing (`carried_results`): the run that judged it.
CARRIED_FROM = "carried_from_run"


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


def carried_results(instance: DagsterInstance, key: AssetKey, names: Iterable[str], reason: str) -> list[AssetCheckResult]:
    """The latest judged result of each of `key`'s checks `names` (those never judged: none), reported again
    because this run published nothing. A failure stays failed (a breaker's rejection holds the dependents
    until a load publishes) but as a warning: the data it judged was never published, and a run with
    nothing new is no failure."""
    storage = instance.event_log_storage
    results = []
    for name in names:
        judged = storage.get_asset_check_execution_history(
            AssetCheckKey(key, name), limit=1, status=COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES
        )
        evaluation = judged[0].evaluation if judged else None
        if evaluation is None:
            continue
        metadata = {**evaluation.metadata, CARRIED_FROM: judged[0].run_id, "carried_because": reason}
        results.append(
            AssetCheckResult(
                check_name=name,
                passed=evaluation.passed,
                severity=evaluation.severity if evaluation.passed else AssetCheckSeverity.WARN,
                metadata=metadata,
            )
        )
    return results
