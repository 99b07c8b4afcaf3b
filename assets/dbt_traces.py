"""A dbt build in the run's trace: the build step's span, and one span per model, seed, snapshot and test.

dbt runs the build in its own threads and knows nothing of OpenTelemetry, but its run results
(`run_results.json`) give each node's status, rows and execution times; the spans are made from
them once the build has ended, under a step span like the pipeline steps' (docs/operations.md, "Traces").
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

from opentelemetry.trace import StatusCode

from etl_platform.tracing import Tracer, context_of, run_context

# dbt's statuses of a node that did not do its job (a failed test, a model that raised).
FAILED_STATUSES = {"error", "fail", "runtime error"}


def record_build_spans(
    tracer: Tracer, run_id: str, step: str, started: float, ended: float, results: Iterable[dict], succeeded: bool
) -> None:
    """The build step's span from `started` to `ended` (seconds) and a `dbt.node` span for each of
    its run results that has an execution time."""
    attributes = {"etl.run_id": run_id, "etl.step": step}
    step_span = tracer.start_span("step", context=run_context(run_id), start_time=_nanoseconds(started), attributes=attributes)
    parent = context_of(step_span)
    for result in results:
        window = _execution_window(result)
        if window is None:  # skipped: it never ran
            continue
        node = tracer.start_span(
            "dbt.node",
            context=parent,
            start_time=window[0],
            attributes={
                "dbt.unique_id": result["unique_id"],
                "dbt.status": str(result["status"]),
                "rows": int((result.get("adapter_response") or {}).get("rows_affected") or 0),
            },
        )
        node.set_status(StatusCode.ERROR if str(result["status"]) in FAILED_STATUSES else StatusCode.OK)
        node.end(end_time=window[1])
    step_span.set_status(StatusCode.OK if succeeded else StatusCode.ERROR)
    step_span.end(end_time=_nanoseconds(ended))


def _execution_window(result: dict) -> tuple[int, int] | None:
    """(start, end) in nanoseconds of the node's `execute` phase, as dbt timed it."""
    for phase in result.get("timing") or []:
        if phase.get("name") == "execute" and phase.get("started_at") and phase.get("completed_at"):
            return _iso_nanoseconds(phase["started_at"]), _iso_nanoseconds(phase["completed_at"])
    return None


def _iso_nanoseconds(text: str) -> int:
    moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:  # dbt writes UTC
        moment = moment.replace(tzinfo=datetime.UTC)
    return _nanoseconds(moment.timestamp())


def _nanoseconds(seconds: float) -> int:
    return int(seconds * 1e9)
