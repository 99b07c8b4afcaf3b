"""The data catalog: every dataset the platform knows, with who owns it and how it is doing.

Definitions say what a dataset is (description, group, owners, kind: pipeline, dbt model or
external); the Dagster instance says how it is: the schema and row count of its latest
materialization, when that was (freshness), and the latest result of each of its checks.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from dagster import AssetCheckKey, AssetKey, DagsterInstance, Definitions
from dagster._core.storage.asset_check_execution_record import COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES

from etl_platform.instance.metadata import plain_values


@dataclass(frozen=True)
class CheckState:
    name: str
    state: str  # the latest result: passed, failed or warned; else not evaluated (yet), or never run


@dataclass
class CatalogEntry:
    dataset: str
    kind: str
    group: str
    owners: list[str]
    description: str
    columns: list[tuple[str, str]] = field(default_factory=list)
    rows: int | None = None
    last_published: datetime.datetime | None = None
    checks: list[CheckState] = field(default_factory=list)

    def matches(self, search: str) -> bool:
        """Case-insensitive search in the name, description, group, owners and column names."""
        text = " ".join([self.dataset, self.description, self.group, *self.owners, *(name for name, _ in self.columns)])
        return search.lower() in text.lower()

    def check_summary(self) -> str:
        if not self.checks:
            return "no checks"
        counts: dict[str, int] = {}
        for check in self.checks:
            counts[check.state] = counts.get(check.state, 0) + 1
        summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items(), key=lambda item: item[0] != "passed"))
        bad = [c.name for c in self.checks if c.state in {"failed", "warned"}]
        return summary + (f" ({', '.join(bad)})" if bad else "")

    def as_json(self) -> dict:
        return {
            "dataset": self.dataset,
            "kind": self.kind,
            "group": self.group,
            "owners": self.owners,
            "description": self.description,
            "columns": [{"name": name, "type": type_} for name, type_ in self.columns],
            "rows": self.rows,
            "last_published": self.last_published.isoformat() if self.last_published else None,
            "checks": [{"name": c.name, "state": c.state} for c in self.checks],
        }


def _kind(kinds: set[str], executable: bool) -> str:
    if not executable:
        return "external"
    return "dbt model" if "dbt" in kinds else "pipeline"


def _check_state(record) -> str:
    if record is None:
        return "never run"
    if record.status not in COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES or record.event is None:
        return "not evaluated"
    evaluation = record.event.dagster_event.event_specific_data
    if evaluation.passed:
        return "passed"
    return "warned" if evaluation.severity.value == "WARN" else "failed"


def _latest_results(instance: DagsterInstance, check_keys: list[AssetCheckKey]) -> dict:
    """Each check's latest judged execution. A load with nothing new plans its checks and publishes
    nothing, so its planned record would hide the last real result: look past it."""
    storage = instance.event_log_storage
    latest = dict(storage.get_latest_asset_check_execution_by_key(check_keys))
    for key, record in latest.items():
        if record.status not in COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES:
            judged = storage.get_asset_check_execution_history(
                key, limit=1, status=COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES
            )
            latest[key] = judged[0] if judged else record
    return latest


def build_catalog(defs: Definitions, instance: DagsterInstance) -> list[CatalogEntry]:
    """One entry per asset in `defs`, filled in from its latest materialization and check results."""
    graph = defs.resolve_asset_graph()
    keys = sorted(graph.get_all_asset_keys(), key=lambda key: key.path)
    latest = instance.get_latest_materialization_events(keys)
    check_keys = sorted(graph.asset_check_keys, key=lambda key: (key.asset_key.path, key.name))
    check_records = _latest_results(instance, check_keys)
    checks_by_asset: dict[AssetKey, list[CheckState]] = {}
    for check_key in check_keys:
        checks_by_asset.setdefault(check_key.asset_key, []).append(
            CheckState(check_key.name, _check_state(check_records.get(check_key)))
        )
    entries = []
    for key in keys:
        node = graph.get(key)
        entry = CatalogEntry(
            dataset=".".join(key.path),
            kind=_kind(set(node.kinds), node.is_executable),
            group=node.group_name,
            owners=list(node.owners),
            description=(node.description or "").strip().split("\n")[0],
            checks=checks_by_asset.get(key, []),
        )
        # The schema as last published; before the first publish, as declared (a Pandera model, dbt's YAML).
        metadata = plain_values(node.metadata)
        event = latest.get(key)
        if event is not None and event.asset_materialization is not None:
            metadata.update(plain_values(event.asset_materialization.metadata))
            entry.rows = metadata.get("dagster/row_count")
            entry.last_published = datetime.datetime.fromtimestamp(event.timestamp, tz=datetime.UTC)
        schema = metadata.get("dagster/column_schema")
        entry.columns = [(column.name, column.type) for column in schema.columns] if schema else []
        entries.append(entry)
    return entries
