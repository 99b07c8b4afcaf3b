"""The embedded instance folder: processes that open it together on a fresh folder, and its dagster.yaml.

Found in CI: two `etl run` started together on a fresh DAGSTER_HOME each created and stamped the
SQLite run storage, so it held two alembic heads and every later open failed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from dagster import DagsterInstance

from etl_platform.instance.home import EMBEDDED_INSTANCE, ensure_dagster_home

OPENERS = 3

# Each opener waits for the go file, so all of them reach the empty storage at the same moment.
OPENER = """
import sys, time
from pathlib import Path
from etl_platform.instance.home import ensure_dagster_home, open_instance
home, go = Path(sys.argv[1]), Path(sys.argv[2])
Path(sys.argv[3]).touch()
while not go.exists():
    time.sleep(0.005)
ensure_dagster_home(home)
with open_instance(home) as instance:
    print(instance.get_runs_count())
"""


def test_processes_that_open_a_fresh_instance_together_create_its_storage_once(tmp_path: Path) -> None:
    home, go = tmp_path / "dagster_home", tmp_path / "go"
    openers = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, str(home), str(go), str(tmp_path / f"ready-{n}")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for n in range(OPENERS)
    ]
    try:
        deadline = time.monotonic() + 120
        while len(list(tmp_path.glob("ready-*"))) < OPENERS and time.monotonic() < deadline:
            time.sleep(0.05)  # the interpreters import Dagster before they wait
        go.touch()
        results = [opener.communicate(timeout=120) for opener in openers]
    finally:
        for opener in openers:
            opener.kill()
            opener.wait()
    assert [opener.returncode for opener in openers] == [0] * OPENERS, [err.decode()[-2000:] for _, err in results]
    with DagsterInstance.from_config(str(home)) as instance:  # two alembic heads fail here
        assert instance.get_runs_count() == 0


def test_an_older_etl_written_dagster_yaml_is_brought_up_to_date_and_a_users_own_is_kept(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    older = EMBEDDED_INSTANCE.replace("concurrency:\n  pools:\n    default_limit: 1\n", "")
    assert older != EMBEDDED_INSTANCE
    for home, text in ((ours, older), (theirs, "run_coordinator:\n  module: my.coordinator\n")):
        home.mkdir()
        (home / "dagster.yaml").write_text(text)
        ensure_dagster_home(home)
    assert (ours / "dagster.yaml").read_text() == EMBEDDED_INSTANCE
    assert (theirs / "dagster.yaml").read_text() == "run_coordinator:\n  module: my.coordinator\n"
