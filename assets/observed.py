"""A pipeline step under observation: its span, its log events' correlation ids, and those events in Dagster's event log.

The engine logs through the `etl_platform` logger and knows nothing of Dagster; while a step runs,
its events also go to the step's `context.log`, so `etl logs RUN_ID` and the UI show them beside
Dagster's own, and (ETL_LOG_FORMAT=json) to stderr as JSON lines with the run id, step, pipeline,
dataset, tenant and trace id (docs/operations.md, "Logs" and "Traces").
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from dagster import AssetExecutionContext

from etl_platform.errors import one_line, redact
from etl_platform.logs import PLATFORM_LOGGER, correlated
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.tracing import Tracer, traced_step

# The step's own events (its outcome), under the platform logger so they are formatted and forwarded alike.
step_log = logging.getLogger(f"{PLATFORM_LOGGER}.step")


class EventLogForwarder(logging.Handler):
    """Each platform log record, redacted, as an event of the step's Dagster log."""

    def __init__(self, context: AssetExecutionContext):
        super().__init__(logging.INFO)
        self.context = context

    def emit(self, record: logging.LogRecord) -> None:
        self.context.log.log(record.levelno, redact(record.getMessage()))


@contextmanager
def observed_step(context: AssetExecutionContext, tracer: Tracer, spec: PipelineSpec) -> Iterator[None]:
    """Run the step's load inside: one span of the run's trace, its log events correlated and forwarded."""
    run_id, step = context.run.run_id, context.get_step_execution_context().step.key
    tenancy = spec.tenancy
    fields = {"run_id": run_id, "step": step, "pipeline": spec.id, "dataset": spec.destination.dataset}
    logger = logging.getLogger(PLATFORM_LOGGER)
    forwarder, level = EventLogForwarder(context), logger.level
    logger.addHandler(forwarder)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        with (
            traced_step(tracer, run_id, "step", **{"etl.step": step, "etl.pipeline": spec.id}),
            correlated(**fields, tenant=tenancy.value if tenancy else None),
        ):
            try:
                yield
            except Exception as error:
                step_log.error("%s: the load failed: %s", spec.id, one_line(error))
                raise
    finally:
        logger.removeHandler(forwarder)
        logger.setLevel(level)
