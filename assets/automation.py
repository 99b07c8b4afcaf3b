"""When declarative automation starts an asset: when the data of a dataset it reads has changed.

A pipeline run that finds nothing new records its dataset as unchanged: a materialization with
the data version it had (assets.factory), so that its dependents in the same run still run.
Dagster's `eager()` would start every dependent on such a materialization; the condition here
starts them only on a new data version. Datasets that outside systems report (webhook triggers)
carry no data version, so for those any reported materialization is a change.
"""

from __future__ import annotations

from collections.abc import Collection

from dagster import AssetKey, AssetSelection, AutomationCondition


def _any_dep(changed: AutomationCondition) -> AutomationCondition:
    """As Dagster's any_deps_updated: ignore an update made by a run that also ran this asset."""
    return AutomationCondition.any_deps_match(
        (changed & ~AutomationCondition.executed_with_root_target()) | AutomationCondition.will_be_requested()
    )


def deps_changed(reported: Collection[AssetKey] = ()) -> AutomationCondition:
    """A dependency has new data: a new data version, or (for the `reported` ones) any reported update."""
    changed = _any_dep(AutomationCondition.data_version_changed())
    if not reported:
        return changed.with_label("any_deps_changed")
    externals = AssetSelection.assets(*reported)
    return (changed.ignore(externals) | _any_dep(AutomationCondition.newly_updated()).allow(externals)).with_label(
        "any_deps_changed"
    )


def dataset_updated(reported: Collection[AssetKey] = (), ignored: Collection[AssetKey] = ()) -> AutomationCondition:
    """Dagster's eager(), with `deps_changed` for "updated", and never over a failed blocking check upstream.

    `ignored` dependencies are read but do not start the asset (a lookup of a file-triggered pipeline).
    """
    changed = deps_changed(reported)
    if ignored:
        changed = changed.ignore(AssetSelection.assets(*ignored))
    return (
        AutomationCondition.in_latest_time_window()
        & (AutomationCondition.newly_missing() | changed).since_last_handled()
        & ~AutomationCondition.any_deps_missing()
        & ~AutomationCondition.any_deps_in_progress()
        & ~AutomationCondition.in_progress()
        & AutomationCondition.all_deps_blocking_checks_passed()
    ).with_label("dataset_updated")
