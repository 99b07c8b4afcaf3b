"""Run one pipeline: open its source from the saved checkpoint, then write, audit and publish it.

This is write-audit-publish (docs/architecture.md, "A load", and docs/how-a-run-works.md).
Nothing is visible in the target until the one publish transaction commits: an append streams
into the target inside that transaction, replace and merge stage first. A failure or a kill at
any earlier point leaves the target as it was; the next run of the pipeline removes staging
leftovers. The steps of a load are engine.load's `Load`; this module opens it and finishes its
report.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid

from etl_platform.breaker import SystemUnavailable
from etl_platform.engine.environment import Environment
from etl_platform.engine.inputs import plan_input
from etl_platform.engine.load import Load
from etl_platform.engine.options import RunOptions
from etl_platform.engine.report import LoadReport
from etl_platform.errors import WarehouseUnavailable, one_line
from etl_platform.quality.audit import QualityGateFailed
from etl_platform.retry import is_transient
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.state.files import FileState
from etl_platform.tracing import run_ids
from etl_platform.warehouse import Warehouse, open_warehouse
from etl_platform.warehouse.metadata import ensure_metadata

log = logging.getLogger(__name__)


def record_file_failure(warehouse: Warehouse, spec: PipelineSpec, files: list, run_id: str, error: BaseException) -> None:
    """Count a failed load against its files, so the sensor retries them alone and dead-letters them after N.

    An outage (warehouse down, a breaker open) says nothing about the files and is not counted;
    an error that names some of the files is counted against those only. A failure that is not
    transient (retry.is_transient) is recorded as permanent: the sensor gives up on it at once.
    """
    if not files or not isinstance(error, Exception) or isinstance(error, WarehouseUnavailable | SystemUnavailable):
        return
    message = one_line(error)
    named = [f for f in files if f.name in message]
    try:
        FileState(warehouse, spec.id).record_failure(named or files, run_id, message[:2000], permanent=not is_transient(error))
    except Exception as unrecorded:  # the load's own error is the one to raise
        log.warning("%s: could not count the failure against its files: %s", spec.id, one_line(unrecorded))


def effective_spec(spec: PipelineSpec, options: RunOptions) -> PipelineSpec:
    """The spec as this load applies it: a replay appends to a replace target; a full refresh of files replaces."""
    write = "append" if options.replay and spec.destination.write == "replace" else spec.destination.write
    if options.full_refresh and spec.destination.is_file:
        write = "replace"
    if write == spec.destination.write:
        return spec
    return spec.model_copy(update={"destination": spec.destination.model_copy(update={"write": write})})


def run_pipeline(spec: PipelineSpec, environment: Environment, options: RunOptions | None = None) -> LoadReport:
    """Load `spec`'s source into its destination; returns counts and schema for metadata (see RunOptions).

    Append and merge file loads read only files not processed before; SQL sources with
    `incremental` read past their high-water mark; a source given in `options` opens from its saved
    position. A failed load counts a failure against its files (see state.files), and a stopped
    one carries its report on the QualityGateFailed.
    """
    started = time.monotonic()
    options = options or RunOptions()
    options = dataclasses.replace(options, run_id=options.run_id or uuid.uuid4().hex)
    spec = effective_spec(spec, options)
    report = LoadReport(spec.id, spec.destination.dataset, options.run_id, spec.destination.write)
    warehouse = open_warehouse(environment.warehouse_url, environment.breakers, environment.secrets)
    warehouse.tracer = environment.tracer
    try:
        ensure_metadata(warehouse)
        load_input = plan_input(spec, environment, warehouse, options)
        if load_input.source is None:
            report.skipped_reason = load_input.nothing_new
            return report
        try:  # building the load checks secrets and lookups: a failure there counts against the files too
            with run_ids(options.run_id):
                return Load(
                    spec, environment, warehouse, load_input.source, options, report, lambda: time.monotonic() - started
                ).run()
        except BaseException as error:
            record_file_failure(warehouse, spec, load_input.files, options.run_id, error)
            raise
        finally:  # a broker's connection: closed whatever happened, so unacknowledged messages go back at once
            if callable(close := getattr(load_input.source, "close", None)):
                close()
    except QualityGateFailed as stopped:
        stopped.report = report
        raise
    finally:
        report.duration_seconds = time.monotonic() - started
        warehouse.close()
