"""A load of a change-capture pipeline in its own process, for the kill -9 tests (tests/test_cdc_crash.py).

`python -m tests.cdc_child KIND SOURCE WAREHOUSE_URL LANDING MODE`: KIND is `postgres` or `mariadb`,
SOURCE the test source's fields as JSON (tests.cdc_support). It prints `ready` once imported, then
runs the pipeline again and again (MODE `loop`), or once, killing itself with SIGKILL right after
the publish committed and before the source is acknowledged (MODE `after-commit`).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from etl_platform.engine.options import RunOptions
from etl_platform.engine.runner import run_pipeline
from etl_platform.sources.change_capture import WindowPosition
from etl_platform.sources.mariadb_cdc import MariadbCdcSource as MariadbCdcRun
from etl_platform.sources.postgres_cdc import PostgresCdcSource
from tests.cdc_support import CdcSource, MariadbCdcSource
from tests.conftest import environment_for

KINDS = {"postgres": (CdcSource, PostgresCdcSource), "mariadb": (MariadbCdcSource, MariadbCdcRun)}


def killed_before_acknowledge(run: type) -> type:
    """The real source's run, whose process dies the moment the engine would acknowledge."""

    class KilledBeforeAcknowledge(run):
        def acknowledge(self, checkpoint: WindowPosition) -> None:
            os.kill(os.getpid(), signal.SIGKILL)

    return KilledBeforeAcknowledge


def main(kind: str, fields: str, warehouse_url: str, landing: str, mode: str) -> None:
    helper, run = KINDS[kind]
    source = helper(**json.loads(fields))
    spec = source.spec(max_changes=40)
    environment = environment_for(warehouse_url, Path(landing))
    print("ready", flush=True)
    if mode == "after-commit":
        killed = killed_before_acknowledge(run)
        run_pipeline(spec, environment, RunOptions(source=lambda saved: killed(spec.source, source.url, saved)))
        return
    while True:
        run_pipeline(spec, environment)


if __name__ == "__main__":
    main(*sys.argv[1:])
