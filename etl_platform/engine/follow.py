"""Long-running mode for stream and change-capture pipelines: micro-batches back to back until stopped.

A sensor requests a run per tick, so a message waits up to the sensor interval before its run
starts. Following a pipeline instead runs its micro-batches one after the other in one process
(`etl follow`): each batch is an ordinary `run_pipeline` (fetch up to the pipeline's micro-batch
size or maximum wait, publish with the position, acknowledge after the commit; docs/architecture.md,
"Source checkpoints"), so stopping between two batches loses and repeats nothing. A stop request
(SIGTERM, Ctrl-C) is honoured after the batch in flight has published and acknowledged.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from etl_platform.engine.environment import Environment
from etl_platform.engine.report import LoadReport
from etl_platform.engine.runner import run_pipeline
from etl_platform.errors import SpecError
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.spec.sources import ChangeCaptureSource
from etl_platform.spec.streams import StreamSource

FOLLOWABLE = (StreamSource, ChangeCaptureSource)


def follow(
    spec: PipelineSpec,
    environment: Environment,
    stop: threading.Event,
    on_batch: Callable[[LoadReport], None],
    idle_seconds: float = 1.0,
) -> int:
    """Run `spec`'s micro-batches until `stop` is set; returns how many batches published rows.

    A batch that found nothing new waits `idle_seconds` (or until stopped) before the next poll, so
    an idle change-capture source with no maximum wait is not polled in a busy loop. A failed batch
    raises: its position stayed where it was, and a supervisor restarting `etl follow` counts
    another delivery of its messages (`dead_letter.after_failures`).
    """
    if not isinstance(spec.source, FOLLOWABLE):
        raise SpecError(
            f"{spec.id}: `etl follow` runs stream, postgres_cdc and mariadb_cdc pipelines; this one reads a "
            f"{spec.source.type} source: run it with `etl run {spec.id}`"
        )
    published = 0
    while not stop.is_set():
        report = run_pipeline(spec, environment, None)
        on_batch(report)
        if report.rows_read:
            published += 1
        else:
            stop.wait(idle_seconds)
    return published
