"""`freshness:` of the pipelines as Dagster's last-update freshness checks, and the sensor that evaluates them.

A check fails (severity error) when the dataset's last materialization is older than `max_age`;
Dagster's freshness sensor evaluates each check when it may have become stale, so a pipeline that
stops publishing is noticed without a run of its own. The check-failure alert sensor alerts on it.
"""

from __future__ import annotations

from dagster import (
    AssetChecksDefinition,
    AssetCheckSeverity,
    DefaultSensorStatus,
    SensorDefinition,
    build_last_update_freshness_checks,
    build_sensor_for_freshness_checks,
)

from assets.factory import dataset_key
from etl_platform.spec import PipelineRegistry

# The name Dagster gives every check build_last_update_freshness_checks makes.
FRESHNESS_CHECK = "freshness_check"
FRESHNESS_SENSOR = "freshness_checks_sensor"


def freshness_checks(registry: PipelineRegistry) -> list[AssetChecksDefinition]:
    """One freshness check per pipeline with `freshness:` (grouped by max age, as Dagster's factory takes them)."""
    by_age: dict = {}
    for spec in registry:
        if spec.freshness is not None:
            by_age.setdefault(spec.freshness.max_age_delta, []).append(dataset_key(spec.destination.dataset))
    return [
        check
        for age, keys in sorted(by_age.items())
        for check in build_last_update_freshness_checks(assets=keys, lower_bound_delta=age, severity=AssetCheckSeverity.ERROR)
    ]


def freshness_sensor(checks: list[AssetChecksDefinition]) -> list[SensorDefinition]:
    """Dagster's sensor that runs the freshness checks when they may fail (none without checks)."""
    if not checks:
        return []
    return [build_sensor_for_freshness_checks(freshness_checks=checks, default_status=DefaultSensorStatus.RUNNING)]
