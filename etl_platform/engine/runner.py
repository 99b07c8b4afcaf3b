"""Run one pipeline: stream source chunks through transforms to the destination, then publish.

This is write-audit-publish (DESIGN.md section 4, and docs/how-a-run-works.md). Nothing is visible
in the target until the one publish transaction commits: an append streams into the target
inside that transaction, replace and merge stage first. A failure or a kill at any earlier point
leaves the target as it was; the next run of the pipeline removes staging leftovers.
"""

from __future__ import annotations

import datetime
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from etl_platform.breaker import SystemUnavailable
from etl_platform.destinations import Destination
from etl_platform.destinations.files import FileDestination
from etl_platform.destinations.table import TableDestination
from etl_platform.engine.inputs import LoadInput, plan_files, plan_query, watched_location
from etl_platform.engine.quarantine import Quarantine
from etl_platform.engine.report import LoadReport
from etl_platform.engine.tuner import tune
from etl_platform.engine.whole_load import WholeLoad, anomaly_outcome
from etl_platform.engine.writer import BackgroundWriter
from etl_platform.errors import SourceError, TransformError, WarehouseUnavailable, one_line
from etl_platform.ml.embeddings import Embedder, shared_embedder
from etl_platform.quality.audit import (
    DatasetAudit,
    QualityGateFailed,
    breaker_outcome,
    drift_outcome,
    gate_message,
    model_outcomes,
    row_rule_outcomes,
)
from etl_platform.quality.model_validator import ModelValidator, model_check_names
from etl_platform.quality.schema_registry import infer_schema
from etl_platform.quality.validator import RowValidator, RuleStats
from etl_platform.sources import PROVENANCE, FileSetSource, SourceChunk
from etl_platform.sources.base import numbered
from etl_platform.spec.models import PipelineSpec, SqlSource
from etl_platform.state.files import AlreadyProcessed, FileState
from etl_platform.stores import FileStore, open_store
from etl_platform.stores.s3 import s3_client
from etl_platform.transforms import ChainOutput, Rejected, TransformChain, TransformContext
from etl_platform.warehouse import Warehouse, open_warehouse

if TYPE_CHECKING:
    from etl_platform.sources.frame import FrameSource
    from etl_platform.sources.quarantine import ReplaySource

log = logging.getLogger(__name__)

# Chunks transformed at once: DuckDB and pyarrow release the GIL, so two threads use both cores.
TRANSFORM_THREADS = 2


@dataclass(frozen=True)
class Progress:
    pipeline: str
    rows_read: int
    bytes_read: int
    total_bytes: int | None


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class Environment:
    """Where a run reads and writes: the resources' values, without Dagster."""

    warehouse_url: str
    landing: FileStore
    lake: FileStore
    s3_client: Callable[[], Any] = s3_client
    embedder: Callable[[], Embedder] = shared_embedder

    @classmethod
    def at(cls, warehouse_url: str, landing: str | Path, lake: str | Path, client: Callable[[], Any] = s3_client) -> Environment:
        """From locations: folders, or s3://bucket/prefix URLs."""
        return cls(warehouse_url, open_store(str(landing), client), open_store(str(lake), client), client)


def plan_input(
    spec: PipelineSpec, environment: Environment, warehouse: Warehouse, files: list[str] | None, full_refresh: bool
) -> LoadInput:
    """This load's source: the pipeline's files or query, narrowed by incremental state."""
    if spec.file_path is not None:
        location = watched_location(spec, environment.landing, environment.s3_client)
        return plan_files(spec, warehouse, location, files, full_refresh)
    if isinstance(spec.source, SqlSource):
        return plan_query(spec, warehouse, full_refresh)
    raise SourceError("a frame pipeline's rows come from its Python function: run it through Dagster (etl run)")


def record_file_failure(warehouse: Warehouse, spec: PipelineSpec, files: list, run_id: str, error: BaseException) -> None:
    """Count a failed load against its files, so the sensor retries them alone and dead-letters them after N.

    An outage (warehouse down, a breaker open) says nothing about the files and is not counted;
    an error that names some of the files is counted against those only.
    """
    if not files or not isinstance(error, Exception) or isinstance(error, WarehouseUnavailable | SystemUnavailable):
        return
    message = one_line(error)
    named = [f for f in files if f.name in message]
    try:
        FileState(warehouse, spec.id).record_failure(named or files, run_id, message[:2000])
    except Exception as unrecorded:  # the load's own error is the one to raise
        log.warning("%s: could not count the failure against its files: %s", spec.id, one_line(unrecorded))


def dataset_reader(warehouse: Warehouse, origin: str) -> Callable[[str, list[str]], pa.Table]:
    """Read columns of a published dataset (for lookups), with an error that says what to run."""

    def read(dataset: str, columns: list[str]) -> pa.Table:
        schema, table = warehouse.split(dataset)
        existing = warehouse.columns(schema, table)
        if existing is None:
            raise TransformError(
                f"{origin}: lookup dataset {dataset} does not exist yet; run the pipeline that publishes it first"
            )
        missing = [c for c in columns if c not in existing]
        if missing:
            raise TransformError(f"{origin}: lookup dataset {dataset} has no column(s) {missing}; it has {list(existing)}")
        return warehouse.read_arrow(f"SELECT {', '.join(map(warehouse.quote, columns))} FROM {warehouse.target(dataset)}")

    return read


def split_null_keys(table: pa.Table, primary_key: list[str]) -> tuple[pa.Table, Rejected | None]:
    """Separate rows a merge cannot place because a key column is null."""
    null_masks = [pc.is_null(table[c]) for c in primary_key]
    any_null = null_masks[0] if len(null_masks) == 1 else pc.or_(*null_masks)
    if not pc.any(any_null).as_py():
        return table, None
    rows = table.filter(any_null)
    columns = [next(c for c in primary_key if row[c] is None) for row in rows.select(primary_key).to_pylist()]
    reasons = [f"primary key column '{c}' is null; a merge needs every key column" for c in columns]
    return table.filter(pc.invert(any_null)), Rejected(rows, "primary_key_not_null", columns, [None] * len(rows), reasons)


def run_pipeline(
    spec: PipelineSpec,
    environment: Environment,
    run_id: str | None = None,
    progress: ProgressCallback | None = None,
    replay: ReplaySource | None = None,
    frame: FrameSource | None = None,
    model: type | None = None,
    files: list[str] | None = None,
    full_refresh: bool = False,
) -> LoadReport:
    """Load `spec`'s source into its destination; returns counts and schema for metadata.

    With `replay` (quarantined rows, see engine.replay), those rows are the source: a replace
    pipeline appends them, checks of a load's size (RowCount, Freshness, volume) are skipped, and
    the replayed records leave the quarantine in the publish transaction. With `frame` (a Python
    function's output), that frame is the source; `model`, a Pandera DataFrameModel, validates the
    rows next to the pipeline's rules.

    `files` (URLs, from a file-arrival sensor) narrows a file source to those files. Append and
    merge file loads read only files not processed before; SQL sources with `incremental` read
    past their high-water mark. `full_refresh` ignores and resets that state, and the load
    replaces the target's rows. A failed load counts a failure against its files (see state.files).
    """
    started = time.monotonic()
    run_id = run_id or uuid.uuid4().hex
    if replay is not None and spec.destination.write == "replace":
        spec = spec.model_copy(update={"destination": spec.destination.model_copy(update={"write": "append"})})
    if full_refresh and spec.destination.is_file:
        spec = spec.model_copy(update={"destination": spec.destination.model_copy(update={"write": "replace"})})
    dataset = spec.destination.dataset
    report = LoadReport(spec.id, dataset, run_id, spec.destination.write)
    warehouse = open_warehouse(environment.warehouse_url)
    try:
        warehouse.ensure_metadata()
        load_input = (
            LoadInput(replay or frame) if (replay or frame) else plan_input(spec, environment, warehouse, files, full_refresh)
        )
        if load_input.source is None:
            report.skipped_reason = load_input.nothing_new
            report.duration_seconds = time.monotonic() - started
            return report
        try:
            return _load(spec, environment, warehouse, load_input, report, started, progress, replay, model, full_refresh)
        except BaseException as error:
            record_file_failure(warehouse, spec, load_input.files, run_id, error)
            raise
    finally:
        warehouse.close()


def _load(
    spec: PipelineSpec,
    environment: Environment,
    warehouse: Warehouse,
    load_input: LoadInput,
    report: LoadReport,
    started: float,
    progress: ProgressCallback | None,
    replay: ReplaySource | None,
    model: type | None,
    full_refresh: bool,
) -> LoadReport:
    """Write, audit, publish (run_pipeline's body, once the input is known)."""
    run_id = report.run_id
    dataset = spec.destination.dataset
    source = load_input.source
    report.source_files = source.describe()
    chunk_rows, threads = spec.execution.chunk_rows, TRANSFORM_THREADS
    if chunk_rows == "auto":
        tuning = tune(warehouse, spec.id)
        chunk_rows, threads, report.tuning = tuning.chunk_rows, tuning.threads, tuning.reason
    report.chunk_rows = chunk_rows
    prefix = warehouse.staging_prefix(dataset)
    run_tag = run_id.replace("-", "")[:12]
    warehouse.drop_staging(dataset)
    quarantine = Quarantine(spec.id, dataset, run_id)
    destination: Destination = (
        FileDestination(spec.destination, environment.lake, warehouse, run_tag)
        if spec.destination.is_file
        else TableDestination(
            spec.destination,
            warehouse,
            f"{prefix}{run_tag}",
            evolve=spec.schema_policy.on_drift == "evolve",
            truncate=full_refresh,
        )
    )
    context = TransformContext(spec.origin, dataset_reader(warehouse, spec.origin), environment.embedder)
    chain = TransformChain(spec.streaming_transforms, context)
    rules = spec.quality.rules
    score_column = spec.quality.score_column
    has_row_rules = any(r.is_row_rule for r in rules)
    validators = [RowValidator(rules, f"{spec.origin}: quality", score_column)] if has_row_rules or score_column else []
    whole_load = WholeLoad(spec, environment.embedder) if spec.whole_load_transforms else None
    if model is not None:
        validators.append(ModelValidator(model, f"{spec.origin}: {model.__name__}"))
    rule_stats = {r.check_name: RuleStats() for r in rules if r.is_row_rule}
    rule_stats.update({name: RuleStats() for name in (model_check_names(model) if model else {})})
    if replay is None:
        dataset_audit = DatasetAudit(rules, dataset, spec.origin, spec.quality.volume)
    else:
        size_rules = ("RowCount", "Freshness")
        dataset_audit = DatasetAudit([r for r in rules if r.rule not in size_rules], dataset, spec.origin)
    latest_schema = warehouse.latest_schema(dataset)
    writer = BackgroundWriter()

    drift_judged = False

    def judge_drift(table: pa.Table) -> None:
        """On the first chunk: compare with the latest schema version and apply the drift policy."""
        outcome = drift_outcome(spec.schema_policy.on_drift, latest_schema, infer_schema(table.schema))
        report.checks.append(outcome)
        if outcome.blocking and not outcome.passed:
            stopped = QualityGateFailed(
                f"{spec.id}: schema drift stopped the load before anything was published: {outcome.detail}. "
                f"Fix the source or the transforms, or set `schema: {{on_drift: warn | evolve}}`",
                report.checks,
            )
            stopped.report = report
            raise stopped

    def transform(table: pa.Table) -> tuple[ChainOutput, dict[str, RuleStats]]:
        """Transforms, then row-level quality rules (on a transform thread)."""
        output = chain.apply(table)
        stats: dict[str, RuleStats] = {}
        for validator in validators:
            checked, seen = validator.apply(output.table)
            output.table = checked.table
            output.rejected += [("quality", rejected) for rejected in checked.rejected]
            stats.update(seen)
        return output, stats

    def stage(chunk: SourceChunk, transformed: tuple[ChainOutput, dict[str, RuleStats]]) -> None:
        """Queue a transformed chunk's rows and rejects for the warehouse, and count them."""
        output, stats = transformed
        for name, seen in stats.items():
            rule_stats[name].merge(seen)
        report.chunks += 1
        if not report.source_columns:
            report.source_columns = [c for c in chunk.table.column_names if c not in PROVENANCE]
        report.rows_read += len(chunk.table) + len(chunk.bad_lines)
        report.bytes_read += chunk.bytes_read
        if chunk.bad_lines:
            writer.submit(quarantine.add_bad_lines, chunk.bad_lines)
        for step, rejected in output.rejected:
            writer.submit(quarantine.add_rejected, step, rejected, chunk.table)
        report.rows_filtered += output.filtered
        table = output.table
        if spec.destination.write == "merge":
            table, missing_key = split_null_keys(table, spec.destination.primary_key)
            if missing_key is not None:
                writer.submit(quarantine.add_rejected, "destination", missing_key, chunk.table)
        if whole_load is not None:
            whole_load.collect(table)  # staged once every row is in (engine.whole_load)
            return
        emit(table.drop_columns([c for c in PROVENANCE if c in table.column_names]))

    def emit(table: pa.Table) -> None:
        """Judge, observe and queue rows for the destination."""
        if not table.num_columns:
            return  # a chunk of bad lines only (an empty JSON file, say): nothing to judge or write
        nonlocal drift_judged
        if not drift_judged:
            drift_judged = True
            judge_drift(table)
        dataset_audit.observe(table)
        writer.submit(destination.write, table)
        report.rows_published += len(table)
        if progress:
            progress(Progress(spec.id, report.rows_read, report.bytes_read, source.total_bytes()))

    # A file source's fingerprint does not depend on the stream: hash the files meanwhile.
    hashing = ThreadPoolExecutor(1, thread_name_prefix="etl-fingerprint")
    early_fingerprint = hashing.submit(source.fingerprint) if isinstance(source, FileSetSource) else None
    hashing.shutdown(wait=False)
    try:
        try:
            # Transform chunks on `threads` threads, keeping their order for staging.
            with ThreadPoolExecutor(threads, thread_name_prefix="etl-transform") as pool:
                in_flight: deque = deque()
                for chunk in source.read(chunk_rows):
                    chunk.table = numbered(chunk.table)
                    if any(name not in PROVENANCE for name in chunk.table.column_names):
                        work = pool.submit(transform, chunk.table)
                    else:  # no data columns: nothing to transform
                        work = Future()
                        work.set_result((ChainOutput(chunk.table), {}))
                    in_flight.append((chunk, work))
                    if len(in_flight) > threads:
                        done, future = in_flight.popleft()
                        stage(done, future.result())
                while in_flight:
                    done, future = in_flight.popleft()
                    stage(done, future.result())
            if whole_load is not None:
                for table in whole_load.finish(chunk_rows):
                    emit(table)
                report.rows_deduplicated = whole_load.rows_dropped
                report.rows_filtered += whole_load.rows_dropped  # removed on purpose, each one in _etl.dedup_audit
                report.rows_aggregated = whole_load.rows_aggregated
                if whole_load.anomalies is not None:
                    report.checks.append(anomaly_outcome(spec.anomaly_detection, *whole_load.anomalies))
        finally:
            context.close()  # the transform threads are done; the writer may still be flushing
            writer.close()
        report.rows_quarantined = quarantine.count
        report.quarantined_by_rule = dict(quarantine.by_rule)
        report.check_accounting()
        report.fingerprint = early_fingerprint.result() if early_fingerprint else source.fingerprint()
        report.checks += row_rule_outcomes(rules, rule_stats)
        if model is not None:
            report.checks += model_outcomes(model_check_names(model), rule_stats)
        if spec.quality.circuit_breaker:
            report.checks.append(breaker_outcome(spec.quality.circuit_breaker, report.rows_read, report.quarantined_by_rule))

        def audit(target: Warehouse) -> None:
            """Inside the publish transaction: dataset rules; any failing blocking check rolls back."""
            report.checks += dataset_audit.judge(target)
            failed = [c for c in report.checks if c.blocking and not c.passed]
            if failed:
                raise QualityGateFailed(gate_message(spec.id, run_id, failed), report.checks)
            if replay is not None:
                target.remove_from_quarantine(replay.ids)
            if whole_load is not None:
                whole_load.record(target, dataset, run_id)
            load_input.advance(target, run_id)

        ledger_row = {
            "dataset": dataset,
            "fingerprint": report.fingerprint,
            "pipeline": spec.id,
            "run_id": run_id,
            "rows": report.rows_published,
            "write": spec.destination.write,
            "schema": infer_schema(destination.schema) if destination.schema is not None else None,
            "replay": replay is not None,
            "loaded_at": datetime.datetime.now(datetime.UTC),
            "rows_read": report.rows_read,
            "bytes_read": report.bytes_read,
            "chunk_rows": chunk_rows,
            "duration_seconds": time.monotonic() - started,
        }
        if destination.schema is None:
            # No data at all (empty files, or only malformed lines): nothing to publish; keep the quarantine,
            # and count the input as processed so a sensor does not request it again.
            with warehouse.transaction():
                warehouse.replace_quarantine(dataset, report.fingerprint, quarantine.batches())
                load_input.advance(warehouse, run_id)
            report.skipped_reason = "the input held no rows"
            report.duration_seconds = time.monotonic() - started
            return report
        try:
            result = destination.publish(ledger_row, quarantine.batches(), audit)
        except QualityGateFailed as stopped:
            # The load was rolled back; its failing rows are kept, so the message's query finds them
            # (a replay's rows never left the quarantine).
            destination.discard()
            if replay is None:
                with warehouse.transaction():
                    warehouse.replace_quarantine(dataset, report.fingerprint, quarantine.batches())
            report.duration_seconds = time.monotonic() - started
            report.rows_published = 0  # staged, then rolled back: nothing reached the target
            stopped.report = report
            raise
        except AlreadyProcessed as taken:
            report.rows_published = 0
            report.skipped_reason = f"{taken}; nothing was published twice"
            report.duration_seconds = time.monotonic() - started
            return report
    finally:
        destination.discard()
        quarantine.discard()
    report.schema = destination.schema
    report.target_rows = result.target_rows
    report.schema_version = result.schema_version
    report.skipped_reason = result.skipped_reason
    if result.skipped_reason:
        # The ledger held this content already (a file touched, or renamed back): it is processed.
        report.rows_published = 0
        with warehouse.transaction():
            load_input.advance(warehouse, run_id)
    report.duration_seconds = time.monotonic() - started
    return report
