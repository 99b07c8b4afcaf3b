"""What one load reads: which files (and which state says they are new), which cursor range, or a given source.

Incremental state lives in the warehouse (etl_platform.state). This module only opens the source
from it; the source's checkpoint advances that state in the publish transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from etl_platform.breaker import BreakerBoard
from etl_platform.engine.environment import Environment
from etl_platform.engine.options import RunOptions
from etl_platform.errors import DestinationError, SourceError, SpecError
from etl_platform.sources import Source, SqlQuerySource, open_file_source, reads_tail
from etl_platform.sources.mariadb_cdc import open_mariadb_cdc
from etl_platform.sources.postgres_cdc import open_postgres_cdc
from etl_platform.sources.rest import RestApiSource
from etl_platform.sources.rest.pages import PageKeeper
from etl_platform.sources.streams import open_stream_source
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.spec.rest import RestSourceSpec
from etl_platform.spec.sources import MariadbCdcSource as MariadbCdcSpec
from etl_platform.spec.sources import PostgresCdcSource as PostgresCdcSpec
from etl_platform.spec.sources import SqlSource
from etl_platform.spec.streams import StreamSource
from etl_platform.spec.triggers import FileArrival
from etl_platform.state import FileState, ProcessedFiles, saved_position
from etl_platform.state.appends import AppendRules, adopt_legacy_entries, plan_appends
from etl_platform.state.cursor import saved_mark
from etl_platform.stores import AllowedRoots, FileLocation, FileStore, StoredFile
from etl_platform.warehouse import Warehouse
from etl_platform.warehouse.ledger import ledger_entries


@dataclass
class LoadInput:
    """The source of one load; without one, `nothing_new` says why there is nothing to read."""

    source: Source | None
    files: list[StoredFile] = field(default_factory=list)
    nothing_new: str | None = None


def watched_location(
    spec: PipelineSpec, landing: FileStore, s3_client: Callable[[], Any], breakers: BreakerBoard, roots: AllowedRoots
) -> FileLocation:
    return FileLocation.of(spec.file_path, landing, s3_client, breakers, roots)


def dead_letter_prefix(location: FileLocation, arrival: FileArrival | None) -> str:
    """Where a pipeline's failing files go: below the watched prefix, never matched by it."""
    return location.prefix + (arrival or FileArrival()).dead_letter_prefix.lstrip("/")


def plan_input(spec: PipelineSpec, environment: Environment, warehouse: Warehouse, options: RunOptions) -> LoadInput:
    """This load's source, opened from the pipeline's saved checkpoint (none on a full refresh)."""
    if spec.partitions is not None and spec.partition is None:
        raise SpecError(
            f"{spec.origin}: pipeline {spec.id!r} is partitioned: load one partition at a time "
            f"(`etl backfill {spec.id} --from KEY --to KEY`, or a partition in the Dagster UI)"
        )
    if spec.destination.write == "append" and not options.full_refresh:
        refuse_forgotten_target(spec, warehouse)
    if options.source is not None:
        saved = None if options.full_refresh else saved_position(warehouse, spec.id)
        return LoadInput(options.source(saved))
    if spec.file_path is not None:
        location = watched_location(spec, environment.landing, environment.s3_client, environment.breakers, environment.roots)
        return plan_files(spec, warehouse, location, options)
    if isinstance(spec.source, SqlSource):
        return plan_query(spec, warehouse, options.full_refresh, environment.secrets)
    if isinstance(spec.source, RestSourceSpec):
        return plan_rest(spec, environment, warehouse, options)
    if isinstance(spec.source, PostgresCdcSpec):
        return LoadInput(open_postgres_cdc(spec, warehouse, options.full_refresh, environment.secrets))
    if isinstance(spec.source, MariadbCdcSpec):
        return LoadInput(open_mariadb_cdc(spec, warehouse, options.full_refresh, environment.secrets))
    if isinstance(spec.source, StreamSource):  # the next micro-batch from the saved position (a full refresh keeps it)
        return LoadInput(open_stream_source(spec.source, environment.secrets, saved_position(warehouse, spec.id)))
    raise SourceError("a frame pipeline's rows come from its Python function: run it through Dagster (etl run)")


def refuse_forgotten_target(spec: PipelineSpec, warehouse: Warehouse) -> None:
    """The ledger must not outlive its target: a dropped append target is rebuilt by a full refresh only.

    Appending to a new, empty table would publish only what is new, and every input the ledger
    remembers would stay missing from it without a word.
    """
    dataset = spec.destination.dataset
    if spec.destination.is_file or warehouse.columns(*warehouse.split(dataset)) is not None:
        return
    appended = ledger_entries(warehouse, dataset)
    if appended:
        raise DestinationError(
            f"{dataset} does not exist, but the load ledger says {appended} input(s) were appended to it (was it "
            f"dropped?). Nothing was loaded. Run `etl run {spec.id} --full-refresh` to load every input still there "
            f"into a new table (and forget the ledger), or restore the table"
        )


def plan_files(spec: PipelineSpec, warehouse: Warehouse, location: FileLocation, options: RunOptions) -> LoadInput:
    """The files this load reads: the requested ones, or every match; incremental loads skip processed ones.

    A replace reads every matching file whatever a sensor asked for: its target is their content.
    Files arriving (a file_arrival trigger) may all be gone (processed and archived, dead-lettered):
    an empty inbox is nothing new; elsewhere no file at all is an error that says where it looked.
    An append reads, of the rest, what the append ledger does not hold yet (state.appends).
    """
    excluded = dead_letter_prefix(location, spec.file_arrival)
    if (options.files is None or not spec.incremental_files) and spec.file_arrival is not None:
        listed = files = sorted(location.matching(excluded), key=lambda f: f.key)
        if not files:
            return LoadInput(None, nothing_new=f"no files waiting in {location.url}")
    elif options.files is None or not spec.incremental_files:
        listed = files = [f for f in location.files() if not f.key.startswith(excluded)]
    else:
        wanted = set(options.files)
        listed = sorted(location.matching(excluded), key=lambda f: f.key)
        files = [f for f in listed if f.url in wanted]
        if not files:
            return LoadInput(None, nothing_new="the requested files are gone (moved to the dead-letter prefix, or deleted)")
    incremental = spec.incremental_files and not options.full_refresh
    records = {}
    if incremental:
        state = FileState(warehouse, spec.id)
        records = state.records()
        if spec.destination.write == "append":
            records = adopt_legacy_entries(append_rules(spec, warehouse, location, records), spec.id, listed)
        files = state.pending(files, records)
        if not files:
            return LoadInput(None, nothing_new=f"no new or changed files in {location.url}")
    if spec.destination.write != "append":
        processed = ProcessedFiles(files, exclusive=incremental, reset=options.full_refresh)
        return LoadInput(open_file_source(spec.source, files, location.store, processed), files)
    return plan_append_files(spec, append_rules(spec, warehouse, location, records, options.full_refresh), files, listed, options)


def append_rules(
    spec: PipelineSpec, warehouse: Warehouse, location: FileLocation, records: dict, fresh: bool = False
) -> AppendRules:
    return AppendRules(
        warehouse,
        spec.destination.dataset,
        location.store,
        records,
        spec.destination.on_changed_file,
        lambda file: reads_tail(spec.source, file),
        fresh,
    )


def plan_append_files(
    spec: PipelineSpec, rules: AppendRules, files: list[StoredFile], listed: list[StoredFile], options: RunOptions
) -> LoadInput:
    """An append's files less those whose content the dataset holds (recorded as processed, not read)."""
    plan = plan_appends(rules, files, listed)
    processed = ProcessedFiles(
        plan.read + plan.held,
        exclusive=not options.full_refresh,
        reset=options.full_refresh,
        contents=plan.fingerprints,
        reread=frozenset(plan.reread),
    )
    if not plan.read:
        # Recording held content as processed is idempotent: a run started beside this one that recorded
        # the same files first is no conflict. Under the dataset lock, like every write of its state.
        with rules.warehouse.publishing(rules.dataset):
            replace(processed, exclusive=False).save(rules.warehouse, spec.id, options.run_id or "")
        names = ", ".join(f.name for f in plan.held[:3]) + (", ..." if len(plan.held) > 3 else "")
        reason = f"every new or changed file holds content already appended to {rules.dataset} ({names})"
        return LoadInput(None, nothing_new=reason)
    return LoadInput(open_file_source(spec.source, plan.read, rules.store, processed, plan), plan.read)


def plan_query(spec: PipelineSpec, warehouse: Warehouse, full_refresh: bool, secrets: Mapping[str, str]) -> LoadInput:
    """A SQL source; incremental ones read from the high-water mark minus the look-back."""
    source_spec: SqlSource = spec.source
    incremental = source_spec.incremental
    piece = (spec.partitions.source_column, spec.partition) if spec.partitions and spec.partition else None
    if incremental is None:
        return LoadInput(SqlQuerySource(source_spec, warehouse, secrets, partition=piece))
    mark = None if full_refresh else saved_mark(saved_position(warehouse, spec.id), incremental.cursor)
    try:
        since = mark.minus(incremental.lookback_value) if mark is not None else None
    except ValueError as exc:
        raise SourceError(f"{spec.origin}: source.incremental.lookback: {exc}") from None
    return LoadInput(SqlQuerySource(source_spec, warehouse, secrets, since, reset=full_refresh, partition=piece))


def plan_rest(spec: PipelineSpec, environment: Environment, warehouse: Warehouse, options: RunOptions) -> LoadInput:
    """A REST source from its saved per-parent cursors; its raw pages go to the lake."""
    saved = None if options.full_refresh else saved_position(warehouse, spec.id)
    pages = PageKeeper(spec.source.raw_pages, environment.lake, spec.id, options.run_id or "")
    source = RestApiSource(spec.source, saved, environment.secrets, environment.breakers, pages, options.full_refresh)
    return LoadInput(source)
