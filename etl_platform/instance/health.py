"""`etl doctor`'s checks of the Dagster instance: its storage answers, and a daemon heartbeat is recent.

Without a daemon (`dagster-daemon run`, or `etl ui`'s dagster dev) schedules, sensors, run
queues and automation stop silently: the heartbeat is the one place that shows it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from etl_platform.instance.home import open_instance
from etl_platform.observability.findings import Finding, probe

if TYPE_CHECKING:
    from dagster import DagsterInstance

# Dagster's daemons beat every 30 s; a heartbeat older than this means none is running.
HEARTBEAT_MAX_AGE_SECONDS = 120.0


def instance_findings(dagster_home: Path) -> list[Finding]:
    """Storage reachable (the run, event and schedule storages answer), then the daemon's heartbeat."""
    opened: dict = {}

    def reach() -> str:
        instance = opened["instance"] = open_instance(dagster_home)
        runs = instance.get_runs_count()
        instance.get_latest_materialization_events([])
        instance.all_instigator_state()
        return f"{dagster_home}: {type(instance.run_storage).__name__}, {runs} runs"

    storage = probe(
        "dagster instance storage",
        reach,
        f"check the storage in {dagster_home / 'dagster.yaml'} (its database URL) and that its server is up",
    )
    if not storage.ok:
        return [storage, Finding("daemon heartbeat", False, "not checked: the instance storage is unreachable", storage.fix)]
    return [storage, probe("daemon heartbeat", lambda: _heartbeat(opened["instance"]), _DAEMON_FIX)]


_DAEMON_FIX = "start the daemon on this DAGSTER_HOME: `dagster-daemon run -w workspace.yaml` (or `etl ui` in development)"


def _heartbeat(instance: DagsterInstance) -> str:
    beats = instance.get_daemon_heartbeats()
    if not beats:
        raise RuntimeError("no daemon has ever run against this instance: schedules and sensors do not run")
    newest = max(beat.timestamp for beat in beats.values())
    age = time.time() - newest
    if age > HEARTBEAT_MAX_AGE_SECONDS:
        raise RuntimeError(f"the newest daemon heartbeat is {age:.0f} s old (more than {HEARTBEAT_MAX_AGE_SECONDS:.0f} s)")
    return f"{len(beats)} daemons, newest heartbeat {age:.0f} s ago"
