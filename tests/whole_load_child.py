"""A whole-load pipeline's load in its own process, for the memory-bound tests (tests/test_whole_load_memory.py).

`python -m tests.whole_load_child WAREHOUSE_URL LANDING CHUNK_ROWS STEP` (STEP: aggregate or
deduplicate, the file's columns as the tests write them): runs a warm-up load of the same
pipeline on a one-row file first (so imports and first-use allocations are in the baseline), then
the real one, and prints one JSON line: the RSS before the real load and its peak during it, in bytes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson

from etl_platform.engine.runner import run_pipeline
from etl_platform.spec.pipeline import PipelineSpec
from tests.conftest import environment_for, pipeline


def _status(field: str) -> int:
    """VmRSS or VmHWM (the peak) of this process, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise LookupError(field)


STEPS = {
    "aggregate": {"aggregate": {"group_by": ["customer"], "measures": {"total": {"sum": "amount"}, "longest": {"max": "note"}}}},
    "deduplicate": {
        "deduplicate": {"fuzzy": {"fields": {"name": 1, "city": 1}, "compare": "characters", "blocking": [{"column": "city"}]}}
    },
}


FORMATS = {"deduplicate": {"format": "parquet"}}


def main(warehouse_url: str, landing: str, chunk_rows: str, step: str) -> None:
    def spec(path: str) -> PipelineSpec:
        return pipeline(
            source={"type": "parquet", "path": path},
            transforms=[STEPS[step]],
            # deduplicate publishes most of the load: to Parquet files, so a warehouse's own buffers stay out of the peak
            destination={"dataset": f"mart.{Path(path).stem}", "write": "replace", **FORMATS.get(step, {})},
            execution={"chunk_rows": int(chunk_rows)},
        )

    environment = environment_for(warehouse_url, Path(landing))
    run_pipeline(spec("warmup.parquet"), environment)
    Path("/proc/self/clear_refs").write_text("5")  # resets the peak to the current RSS (proc(5))
    before = _status("VmRSS")
    report = run_pipeline(spec("events.parquet"), environment)
    counts = {"published": report.rows_published, "deduplicated": report.rows_deduplicated}
    print(orjson.dumps({"before": before, "after": _status("VmHWM"), **counts}).decode())


if __name__ == "__main__":
    main(*sys.argv[1:])
