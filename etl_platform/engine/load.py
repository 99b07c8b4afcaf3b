"""One streaming load, from an opened source to publish or skip: write-audit-publish as an object.

The steps, in order (docs/architecture.md, "A load"): stream the source's chunks through the
transforms and row rules (engine.chunks), judging schema drift on the first rows and writing to
the destination's staging area as they come; run the whole-load steps; account for every row;
then `_publish_or_skip`, the one place that decides whether anything is published. The audit
(dataset rules, blocking checks) and the source's checkpoint run inside the publish transaction,
so nothing is visible, and no progress is saved, unless everything holds. `run_pipeline` opens a
Load and finishes its report (duration, failure) in one place.
"""

from __future__ import annotations

import datetime
import functools
import logging
import re
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import pyarrow as pa
import pyarrow.compute as pc

from etl_platform.destinations import Destination
from etl_platform.destinations.files import FileDestination
from etl_platform.destinations.table import TableDestination
from etl_platform.engine.chunks import TRANSFORM_THREADS, ChunkTransformer, Transformed, dataset_reader, transformed_chunks
from etl_platform.engine.environment import Environment
from etl_platform.engine.options import Progress, RunOptions
from etl_platform.engine.quarantine import Quarantine
from etl_platform.engine.report import LoadReport
from etl_platform.engine.tuner import tune
from etl_platform.engine.whole_load import WholeLoad, anomaly_outcome
from etl_platform.engine.writer import BackgroundWriter
from etl_platform.errors import TransformError, one_line
from etl_platform.quality.audit import (
    DatasetAudit,
    QualityGateFailed,
    breaker_outcome,
    change_lag_outcome,
    drift_outcome,
    gate_message,
    model_outcomes,
    row_rule_outcomes,
)
from etl_platform.quality.model_validator import ModelValidator, model_check_names
from etl_platform.quality.schema_registry import infer_schema
from etl_platform.quality.tenancy import tenant_isolation_outcome
from etl_platform.quality.validator import RowValidator, RuleStats
from etl_platform.sources import PROVENANCE, SOURCE_FILE, Checkpoint, FileSetSource, Source, SourceChunk
from etl_platform.sources.change_capture import ChangeCaptureRun
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.state.files import AlreadyProcessed
from etl_platform.state.tenants import stamp_tenant
from etl_platform.tracing import context_of, current_context
from etl_platform.transforms import Rejected, TransformChain, TransformContext
from etl_platform.transforms.tenant import TENANT_RULE
from etl_platform.warehouse import Warehouse
from etl_platform.warehouse.ledger import AppendedMeanwhile, forget_files
from etl_platform.warehouse.publish import forget_file_rows, latest_registered_schema, replace_quarantine

log = logging.getLogger(__name__)

# Checks of a load's size: a replay of quarantined rows is not a load of the source.
SIZE_RULES = ("RowCount", "Freshness")


def split_null_keys(table: pa.Table, primary_key: list[str]) -> tuple[pa.Table, Rejected | None]:
    """Separate rows a merge cannot place because a key column is null."""
    any_null = functools.reduce(pc.or_, [pc.is_null(table[c]) for c in primary_key])
    if not pc.any(any_null).as_py():
        return table, None
    rows = table.filter(any_null)
    columns = [next(c for c in primary_key if row[c] is None) for row in rows.select(primary_key).to_pylist()]
    reasons = [f"primary key column '{c}' is null; a merge needs every key column" for c in columns]
    return table.filter(pc.invert(any_null)), Rejected(rows, "primary_key_not_null", columns, [None] * len(rows), reasons)


NUL = re.compile(b"\x00")


def may_hold_nul(column: pa.ChunkedArray) -> bool:
    """One look at the bytes of all values, at memchr speed, before any per-value work (UTF-8 holds a
    zero byte only for the NUL character)."""
    return any(chunk.buffers()[2] is not None and NUL.search(memoryview(chunk.buffers()[2])) for chunk in column.chunks)


def split_unstorable(table: pa.Table) -> tuple[pa.Table, Rejected | None]:
    """Separate rows with a NUL byte (0x00) in a text value: PostgreSQL cannot store one (its COPY
    would refuse the whole load) and SQLite's text functions stop at it. Every warehouse refuses it
    alike, so a pipeline behaves the same on the embedded DuckDB as on PostgreSQL: the row goes to
    quarantine with its file and line, and the rest loads."""
    text = [
        f.name
        for f in table.schema
        if f.name not in PROVENANCE
        and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))
        and may_hold_nul(table[f.name])
    ]
    if not text:
        return table, None
    has_nul = functools.reduce(pc.or_, [pc.fill_null(pc.match_substring(table[c], "\x00"), False) for c in text])
    if not pc.any(has_nul).as_py():
        return table, None
    rows = table.filter(has_nul)
    records = rows.select(text).to_pylist()
    columns = [next(c for c in text if row[c] is not None and "\x00" in row[c]) for row in records]
    values = [row[c] for row, c in zip(records, columns, strict=True)]
    reasons = [
        f"column '{c}' holds a NUL byte (0x00), which the warehouse cannot store; remove it at the source or in a transform"
        for c in columns
    ]
    return table.filter(pc.invert(has_nul)), Rejected(rows, "unstorable_value", columns, values, reasons)


class Load:
    """Write, audit, publish one load of `spec` from `source`; `run` returns the filled report."""

    def __init__(
        self,
        spec: PipelineSpec,
        environment: Environment,
        warehouse: Warehouse,
        source: Source,
        options: RunOptions,
        report: LoadReport,
        elapsed: Callable[[], float],
    ):
        self.spec, self.warehouse, self.source, self.options = spec, warehouse, source, options
        self.report, self.elapsed = report, elapsed
        self.dataset = spec.destination.dataset
        report.source_files = source.describe()
        self.chunk_rows, self.threads = self._chunking()
        self.quarantine = Quarantine(spec.id, self.dataset, report.run_id, spec.tenancy.value if spec.tenancy else None)
        self.destination = self._destination(environment)
        reader = dataset_reader(warehouse, spec.origin)
        self.context = TransformContext(spec.origin, reader, environment.embedder, environment.secrets, environment.breakers)
        # A warehouse cannot store a NUL byte; a file can (split on the transform threads, off the stream's path).
        unstorable = None if spec.destination.is_file else split_unstorable
        self.transform = ChunkTransformer(
            TransformChain(spec.streaming_transforms, self.context, spec.pii, spec.tenancy),
            self._validators(),
            unstorable,
            environment.tracer,
        )
        self.tracer = environment.tracer
        self.rule_stats = {r.check_name: RuleStats() for r in spec.quality.rules if r.is_row_rule}
        self.rule_stats.update({name: RuleStats() for name in self._model_checks()})
        rules = spec.quality.rules
        self.dataset_audit = (
            DatasetAudit([r for r in rules if r.rule not in SIZE_RULES], self.dataset, spec.origin)
            if options.replay
            else DatasetAudit(rules, self.dataset, spec.origin, spec.quality.volume)
        )
        self.whole_load = (
            WholeLoad(spec, environment.embedder, self._published, self.chunk_rows) if spec.whole_load_transforms else None
        )
        self.latest_schema = latest_registered_schema(warehouse, self.dataset)
        self.drift_judged = False
        self.writer = BackgroundWriter()
        self.rows_by_file: Counter[str] = Counter()  # rows each input file gave, for its append ledger entry
        # on_changed_file: reload deletes a file's rows by this column, so the target keeps it
        self.kept_provenance = SOURCE_FILE if spec.destination.on_changed_file == "reload" else None

    # --- setting up -------------------------------------------------------------------------

    def _chunking(self) -> tuple[int, int]:
        """Rows per chunk and transform threads: the spec's, or the auto-tuner's from past loads."""
        chunk_rows = self.spec.execution.chunk_rows
        if chunk_rows != "auto":
            self.report.chunk_rows = chunk_rows
            return chunk_rows, TRANSFORM_THREADS
        tuning = tune(self.warehouse, self.spec.id)
        self.report.chunk_rows, self.report.tuning = tuning.chunk_rows, tuning.reason
        return tuning.chunk_rows, tuning.threads

    def _destination(self, environment: Environment) -> Destination:
        """Staging named after the run; staging of earlier runs that are gone is removed first
        (a concurrent run of the dataset claims its own staging, which stays: warehouse.locks)."""
        destination = self.spec.destination
        run_tag = self.report.run_id.replace("-", "")[:12]
        self.warehouse.drop_abandoned_staging(self.dataset)
        if destination.is_file:
            return FileDestination(destination, environment.lake, self.warehouse, run_tag)
        return TableDestination(
            destination,
            self.warehouse,
            f"{self.warehouse.staging_prefix(self.dataset)}{run_tag}",
            evolve=self.spec.schema_policy.on_drift == "evolve",
            truncate=self.options.full_refresh,
            reloaded=self.source.reloaded() if isinstance(self.source, FileSetSource) else None,
            partition=(piece.column, piece.key, self.spec.id) if (piece := self.spec.partition) else None,
            tenant=self.spec.tenancy,
        )

    def _validators(self) -> list:
        quality = self.spec.quality
        validators: list = []
        if any(r.is_row_rule for r in quality.rules) or quality.score_column:
            validators.append(RowValidator(quality.rules, f"{self.spec.origin}: quality", quality.score_column))
        if self.options.model is not None:
            validators.append(ModelValidator(self.options.model, f"{self.spec.origin}: {self.options.model.__name__}"))
        return validators

    def _published(self, columns: list[str]) -> pa.Table | None:
        """The destination table's columns, for a deduplicate step that matches against it; None before it exists."""
        if self.spec.destination.is_file or self.options.full_refresh:
            return None
        existing = self.warehouse.columns(*self.warehouse.split(self.dataset))
        if existing is None:
            return None
        missing = [c for c in columns if c not in existing]
        if missing:
            raise TransformError(
                f"{self.spec.origin}: deduplicate against_target compares {missing}, which {self.dataset} does not have; "
                f"it has {list(existing)}: compare columns the target holds, or drop against_target"
            )
        quoted = ", ".join(map(self.warehouse.quote, columns))
        return self.warehouse.read_arrow(f"SELECT {quoted} FROM {self.warehouse.target(self.dataset)}")

    def _model_checks(self) -> dict[str, str]:
        return model_check_names(self.options.model) if self.options.model is not None else {}

    # --- the load ---------------------------------------------------------------------------

    def run(self) -> LoadReport:
        """The load as one `load` span: read, transform and rules per chunk, write, then publish (audit inside)."""
        attributes = {"etl.pipeline": self.spec.id, "etl.dataset": self.dataset, "etl.run_id": self.report.run_id}
        with self.tracer.start_as_current_span("load", attributes=attributes) as span:
            self.transform.trace_parent = current_context()
            try:
                self._stream(self._fingerprint_meanwhile())
                with self.tracer.start_as_current_span("publish"):
                    report = self._publish_or_skip()
                span.set_attributes({"rows.read": report.rows_read, "rows.published": report.rows_published})
                return report
            finally:
                self.destination.discard()
                self.quarantine.discard()
                if self.whole_load is not None:
                    self.whole_load.discard()

    def _stream(self, fingerprint: Future | None) -> None:
        """Read, transform and judge each chunk; the writer thread's COPYs are spans of one `write` span."""
        load = current_context()
        write = self.tracer.start_span("write", context=load)
        self.warehouse.trace_parent = context_of(write)
        try:
            for chunk, transformed in transformed_chunks(self.source, self.chunk_rows, self.threads, self.transform, self.tracer):
                self._stage(chunk, transformed)
            self._finish_whole_load()
        finally:
            self.context.close()  # the transform threads are done; the writer may still be flushing
            try:
                self.writer.close()
            finally:
                write.set_attribute("rows", self.report.rows_published)
                write.end()
                self.warehouse.trace_parent = load
        self._account(fingerprint)

    def _fingerprint_meanwhile(self) -> Future | None:
        """A file source's fingerprint does not depend on the stream: hash the files meanwhile."""
        if not isinstance(self.source, FileSetSource):
            return None
        hashing = ThreadPoolExecutor(1, thread_name_prefix="etl-fingerprint")
        try:
            return hashing.submit(self.source.fingerprint)
        finally:
            hashing.shutdown(wait=False)

    def _stage(self, chunk: SourceChunk, transformed: Transformed) -> None:
        """Count a transformed chunk, queue its rejects for the quarantine and its rows for the destination."""
        output, stats = transformed
        for name, seen in stats.items():
            self.rule_stats[name].merge(seen)
        report = self.report
        report.chunks += 1
        if not report.source_columns:
            report.source_columns = [c for c in chunk.table.column_names if c not in PROVENANCE]
        report.rows_read += len(chunk.table) + len(chunk.bad_lines)
        report.bytes_read += chunk.bytes_read
        if chunk.bad_lines:
            self.writer.submit(self.quarantine.add_bad_lines, chunk.bad_lines)
        for step, rejected in output.rejected:
            self.writer.submit(self.quarantine.add_rejected, step, rejected, chunk.table)
        report.rows_filtered += output.filtered
        table = output.table
        if self.spec.destination.write == "merge" and len(table):  # a chunk of bad lines only has no key columns
            table, missing_key = split_null_keys(table, self.spec.destination.primary_key)
            if missing_key is not None:
                self.writer.submit(self.quarantine.add_rejected, "destination", missing_key, chunk.table)
        if self.whole_load is not None:
            self.whole_load.collect(table)  # staged once every row is in (engine.whole_load)
            return
        self._count_by_file(chunk.table, table)
        self._emit(self._without_provenance(table))

    def _count_by_file(self, source: pa.Table, published: pa.Table) -> None:
        """Rows per input file. A file source's chunk comes from one file, which its provenance
        dictionary names, so counting is one addition; otherwise count the published rows' files."""
        if SOURCE_FILE not in source.column_names or not len(published):
            return
        files = source[SOURCE_FILE]
        first = files.chunk(0) if files.num_chunks == 1 else None
        if isinstance(first, pa.DictionaryArray) and len(first.dictionary) == 1:
            self.rows_by_file[first.dictionary[0].as_py()] += len(published)
        elif SOURCE_FILE in published.column_names:
            for item in pc.value_counts(published[SOURCE_FILE].cast(pa.string())).to_pylist():
                self.rows_by_file[item["values"]] += item["counts"]

    def _without_provenance(self, table: pa.Table) -> pa.Table:
        """The rows as published: without provenance, except each row's file where a reload needs it."""
        table = table.drop_columns([c for c in PROVENANCE if c in table.column_names and c != self.kept_provenance])
        if self.kept_provenance in table.column_names:
            index = table.column_names.index(SOURCE_FILE)
            table = table.set_column(index, SOURCE_FILE, table[SOURCE_FILE].cast(pa.string()))
        return table

    def _emit(self, table: pa.Table) -> None:
        """Judge drift (first rows only), observe for the dataset rules, and queue rows for the destination."""
        if not table.num_columns:
            return  # a chunk of bad lines only (an empty JSON file, say): nothing to judge or write
        if (piece := self.spec.partition) is not None:  # each row names its slice: a partition publishes only it
            table = table.append_column(piece.column, pa.array([piece.key] * len(table), pa.string()))
        if not self.drift_judged:
            self.drift_judged = True
            self._judge_drift(table)
        self.dataset_audit.observe(table)
        self.writer.submit(self.destination.write, table)
        self.report.rows_published += len(table)
        if self.options.progress:
            report = self.report
            self.options.progress(Progress(self.spec.id, report.rows_read, report.bytes_read, self.source.total_bytes()))

    def _judge_drift(self, table: pa.Table) -> None:
        """Compare with the latest schema version and apply the drift policy; `fail` stops the load here."""
        outcome = drift_outcome(self.spec.schema_policy.on_drift, self.latest_schema, infer_schema(table.schema))
        self.report.checks.append(outcome)
        if outcome.blocking and not outcome.passed:
            raise QualityGateFailed(
                f"{self.spec.id}: schema drift stopped the load before anything was published: {outcome.detail}. "
                f"Fix the source or the transforms, or set `schema: {{on_drift: warn | evolve}}`",
                self.report.checks,
            )

    def _finish_whole_load(self) -> None:
        """Run the whole-load steps on every collected row, then write their result."""
        whole_load = self.whole_load
        if whole_load is None:
            return
        for table in whole_load.finish():
            self._emit(table)
        report = self.report
        report.rows_deduplicated = whole_load.rows_dropped
        report.rows_filtered += whole_load.rows_dropped  # removed on purpose, each one in _etl.dedup_audit
        report.rows_aggregated = whole_load.rows_aggregated
        report.dedup_models = whole_load.dedup_models
        if whole_load.anomalies is not None:
            report.checks.append(anomaly_outcome(self.spec.anomaly_detection, *whole_load.anomalies))

    def _account(self, fingerprint: Future | None) -> None:
        """Every row read is published, quarantined or filtered; then the checks judged on the whole stream."""
        report, quality = self.report, self.spec.quality
        report.rows_quarantined = self.quarantine.count
        report.quarantined_by_rule = dict(self.quarantine.by_rule)
        report.check_accounting()
        report.fingerprint = fingerprint.result() if fingerprint else self.source.fingerprint()
        breaker = quality.circuit_breaker
        if self.options.replay:  # rows that fail again are quarantined anew: a replay that fixes none is no failed load
            breaker = breaker.model_copy(update={"fail_when_all_rows_fail": False})
        verdict = breaker_outcome(
            breaker, report.rows_read, report.rows_published, report.quarantined_by_rule, self.quarantine.examples
        )
        # The breaker judged the load's rate and passed it: quarantined rows were handled, their rules did their job.
        contained = verdict.passed and report.rows_read >= breaker.min_record_count
        report.checks += row_rule_outcomes(quality.rules, self.rule_stats, contained)
        if self.options.model is not None:
            report.checks += model_outcomes(self._model_checks(), self.rule_stats, contained)
        report.checks.append(verdict)

    # --- publish or skip --------------------------------------------------------------------

    def _publish_or_skip(self) -> LoadReport:
        """The one place that decides whether this load publishes; the checkpoint goes with it."""
        checkpoint = self.source.checkpoint()
        if self.destination.schema is None:
            if self._failed_checks():  # only malformed lines: the breaker tripped, this is no empty input
                self._keep_failing_rows()
                raise QualityGateFailed(gate_message(self.spec.id, self.report.run_id, self._failed_checks()), self.report.checks)
            # No data at all (empty files): keep the quarantine, and save the
            # checkpoint, so a sensor does not request the same input again.
            try:
                with self.warehouse.publishing(self.dataset):
                    replace_quarantine(self.warehouse, self.dataset, self.report.fingerprint, self.quarantine.batches())
                    self._forget_reloaded_files()
                    self._save(checkpoint, self.warehouse)
            except AlreadyProcessed as taken:  # another run moved the position first
                return self._skipped(f"{taken}; nothing was published twice", None)
            return self._skipped("the input held no rows", checkpoint)
        if isinstance(self.source, ChangeCaptureRun) and self.source.truncation is not None:
            self.destination.truncated_at = self.source.truncation.at  # emptied in the publish, before the changes
            self.report.truncation = self.source.truncation.describe()
        try:
            result = self.destination.publish(
                self._ledger_row(), self.quarantine.batches(), lambda target: self._audit(target, checkpoint)
            )
            if result.skipped_reason:
                # The ledger held this content already (a file touched, a message re-delivered, or a run
                # started beside this one appended it first): it is processed.
                with self.warehouse.publishing(self.dataset):
                    self._save(checkpoint, self.warehouse)
        except QualityGateFailed:
            self._keep_failing_rows()
            raise
        except (AlreadyProcessed, AppendedMeanwhile) as taken:
            return self._skipped(f"{taken}; nothing was published twice", None)
        self.report.schema = self.destination.schema
        self.report.target_rows = result.target_rows
        self.report.schema_version = result.schema_version
        if result.skipped_reason:
            return self._skipped(result.skipped_reason, checkpoint)
        self._acknowledge(checkpoint)
        return self.report

    def _forget_reloaded_files(self) -> None:
        """A reloaded file that now holds no rows still replaces the rows it gave (on_changed_file: reload)."""
        reloaded = self.source.reloaded() if isinstance(self.source, FileSetSource) else []
        if reloaded and self.warehouse.columns(*self.warehouse.split(self.dataset)) is not None:
            forget_file_rows(self.warehouse, self.dataset, reloaded)
            forget_files(self.warehouse, self.dataset, reloaded)

    def _audit(self, target: Warehouse, checkpoint: Checkpoint | None) -> None:
        """Inside the publish transaction: dataset rules; any failing blocking check rolls everything back."""
        with self.tracer.start_as_current_span("audit"):
            self._judge_dataset(target, checkpoint)

    def _judge_dataset(self, target: Warehouse, checkpoint: Checkpoint | None) -> None:
        """The dataset rules and blocking checks, then the whole-load record and the checkpoint."""
        report = self.report
        report.checks += self.dataset_audit.judge(target)
        tenant = self.spec.tenancy
        if tenant is not None and tenant.isolation == "rls":
            foreign = self.quarantine.by_rule.get(TENANT_RULE, 0)
            report.checks.append(tenant_isolation_outcome(tenant, target, self.dataset, report.rows_read, foreign))
        failed = self._failed_checks()
        if failed:
            raise QualityGateFailed(gate_message(self.spec.id, report.run_id, failed), report.checks)
        if self.whole_load is not None:
            self.whole_load.record(target, self.dataset, report.run_id)
        self._save(checkpoint, target)

    def _failed_checks(self) -> list:
        return [c for c in self.report.checks if c.blocking and not c.passed]

    def _save(self, checkpoint: Checkpoint | None, target: Warehouse) -> None:
        if checkpoint is None:
            return
        checkpoint.save(target, self.spec.id, self.report.run_id)
        tenant = self.spec.tenancy.value if self.spec.tenancy else None
        if tenant is not None:
            stamp_tenant(target, self.spec.id, self.report.run_id, tenant)

    def _acknowledge(self, checkpoint: Checkpoint | None) -> None:
        """After the commit, tell the source once. If telling it fails, nothing is lost: the checkpoint
        is saved, and whatever the source delivers again the ledger or the merge absorbs."""
        if checkpoint is None:
            return
        try:
            self.source.acknowledge(checkpoint)
        except Exception as error:
            log.warning("%s: published, but the source was not told (it may deliver again): %s", self.spec.id, one_line(error))
        if isinstance(self.source, ChangeCaptureRun):
            self.report.checks.append(change_lag_outcome(self.spec.source, self.source.lag()))

    def _skipped(self, reason: str, checkpoint: Checkpoint | None) -> LoadReport:
        self.report.rows_published = 0
        self.report.skipped_reason = reason
        self._acknowledge(checkpoint)
        return self.report

    def _keep_failing_rows(self) -> None:
        """A quality gate rolled the load back: keep its failing rows, so the message's query finds them
        (a replay's rows never left the quarantine)."""
        self.destination.discard()
        if not self.options.replay:
            with self.warehouse.publishing(self.dataset):
                replace_quarantine(self.warehouse, self.dataset, self.report.fingerprint, self.quarantine.batches())
        self.report.rows_published = 0  # staged, then rolled back: nothing reached the target

    def _ledger_row(self) -> dict:
        report, source = self.report, self.source
        files = isinstance(source, FileSetSource) and source.plan is not None
        return {
            "appended": source.ledger_entries(self.rows_by_file) if files else None,
            "reloaded": source.reloaded() if files else None,
            "dataset": self.dataset,
            "fingerprint": report.fingerprint,
            "pipeline": self.spec.id,
            "run_id": report.run_id,
            "rows": report.rows_published,
            "write": self.spec.destination.write,
            "schema": infer_schema(self.destination.schema) if self.destination.schema is not None else None,
            "replay": self.options.replay,
            "full_refresh": self.options.full_refresh,
            "launched_by": self.options.launched_by,
            "tenant": self.spec.tenancy.value if self.spec.tenancy else None,
            "partition": self.spec.partition.key if self.spec.partition else None,
            "loaded_at": datetime.datetime.now(datetime.UTC),
            "rows_read": report.rows_read,
            "bytes_read": report.bytes_read,
            "chunk_rows": self.chunk_rows,
            "duration_seconds": self.elapsed(),
        }
