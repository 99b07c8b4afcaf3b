"""The embedded Dagster instance folder: its dagster.yaml, and opening it safely from several processes.

Two `etl` commands started together on a fresh folder (the UI's automation and `etl run`, or two
terminals) both find SQLite storage without tables and both create and stamp it: the run database
then holds two alembic heads and every later open fails. Opening under an exclusive file lock
makes the first open create the storage and the second find it (docs/architecture.md, "Configuration").
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dagster import DagsterInstance

# The first line marks a file `etl` wrote, so `etl` may bring it up to date; a file a user wrote
# (or changed) is theirs and is never touched.
_WRITTEN_BY_ETL = "# Embedded Dagster instance (written by `etl`)"

EMBEDDED_INSTANCE = f"""\
{_WRITTEN_BY_ETL}: SQLite storage in this folder. Runs launched with
# `dagster job launch` or from the UI start at once; production queues them (see ../dagster.yaml).
run_coordinator:
  module: dagster.core.run_coordinator
  class: DefaultRunCoordinator
# No raw stdout/stderr capture: it mirrors step output through `tail -F` processes that can outlive
# `etl run` and keep its output pipe open. Pipelines log through Dagster's structured event log.
# The same pools as production (../dagster.yaml): one load of a dataset, one dbt build at a time,
# so two runs started together (the UI's automation and `etl run`) wait for each other here too.
concurrency:
  pools:
    default_limit: 1
compute_logs:
  module: dagster._core.storage.noop_compute_log_manager
  class: NoOpComputeLogManager
telemetry:
  enabled: false
"""


def ensure_dagster_home(home: Path) -> None:
    """Create the embedded instance folder with its dagster.yaml, or bring an earlier `etl`-written
    one up to date (an older one lacked the pool limits); a user's own dagster.yaml is kept as is."""
    home.mkdir(parents=True, exist_ok=True)
    instance_file = home / "dagster.yaml"
    with _home_lock(home):
        if instance_file.exists():
            current = instance_file.read_text()
            if not current.startswith(_WRITTEN_BY_ETL) or current == EMBEDDED_INSTANCE:
                return
        staged = home / f".dagster.yaml.{os.getpid()}"
        staged.write_text(EMBEDDED_INSTANCE)
        staged.replace(instance_file)  # atomic: a process that reads it never sees half a file


def open_instance(home: Path) -> DagsterInstance:
    """The Dagster instance in `home`, opened under the folder's lock so that its storage is created once."""
    from dagster import DagsterInstance  # imported here: `etl list` or `etl validate` never need Dagster

    with _home_lock(home):
        return DagsterInstance.from_config(str(home))


@contextmanager
def _home_lock(home: Path) -> Iterator[None]:
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".etl.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
