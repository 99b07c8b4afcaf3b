"""A load of a postgres_cdc pipeline in its own process, for the kill -9 tests (tests/test_postgres_cdc_crash.py).

`python -m tests.cdc_child SOURCE_URL WAREHOUSE_URL SLOT PUBLICATION LANDING MODE`: prints `ready` once imported,
then runs the pipeline again and again (MODE `loop`), or once, killing itself with SIGKILL right after
the publish committed and before the slot is acknowledged (MODE `after-commit`).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from etl_platform.engine.options import RunOptions
from etl_platform.engine.runner import run_pipeline
from etl_platform.sources.postgres_cdc import PostgresCdcSource, WindowPosition
from tests.cdc_support import CdcSource
from tests.conftest import environment_for


class KilledBeforeAcknowledge(PostgresCdcSource):
    """The real source, whose process dies the moment the engine would acknowledge."""

    def acknowledge(self, checkpoint: WindowPosition) -> None:
        os.kill(os.getpid(), signal.SIGKILL)


def main(source_url: str, warehouse_url: str, slot: str, publication: str, landing: str, mode: str) -> None:
    source = CdcSource(source_url, slot, publication)
    spec = source.spec(max_changes=40)
    environment = environment_for(warehouse_url, Path(landing))
    print("ready", flush=True)
    if mode == "after-commit":
        options = RunOptions(source=lambda saved: KilledBeforeAcknowledge(spec.source, source_url, saved))
        run_pipeline(spec, environment, options)
        return
    while True:
        run_pipeline(spec, environment)


if __name__ == "__main__":
    main(*sys.argv[1:])
