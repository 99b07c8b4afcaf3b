"""What one load reads: which files (and which state says they are new), which cursor range, or a given source.

Incremental state lives in the warehouse (etl_platform.state). This module only opens the source
from it; the source's checkpoint advances that state in the publish transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from etl_platform.breaker import BreakerBoard
from etl_platform.engine.environment import Environment
from etl_platform.engine.options import RunOptions
from etl_platform.errors import SourceError
from etl_platform.sources import Source, SqlQuerySource, open_file_source
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.spec.sources import SqlSource
from etl_platform.spec.triggers import FileArrival
from etl_platform.state import FileState, ProcessedFiles, saved_position
from etl_platform.state.cursor import saved_mark
from etl_platform.stores import AllowedRoots, FileLocation, FileStore, StoredFile
from etl_platform.warehouse import Warehouse


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
    if options.source is not None:
        saved = None if options.full_refresh else saved_position(warehouse, spec.id)
        return LoadInput(options.source(saved))
    if spec.file_path is not None:
        location = watched_location(spec, environment.landing, environment.s3_client, environment.breakers, environment.roots)
        return plan_files(spec, warehouse, location, options.files, options.full_refresh)
    if isinstance(spec.source, SqlSource):
        return plan_query(spec, warehouse, options.full_refresh, environment.secrets)
    raise SourceError("a frame pipeline's rows come from its Python function: run it through Dagster (etl run)")


def plan_files(
    spec: PipelineSpec,
    warehouse: Warehouse,
    location: FileLocation,
    requested: list[str] | None,
    full_refresh: bool,
) -> LoadInput:
    """The files this load reads: the requested ones, or every match; incremental loads skip processed ones.

    A replace reads every matching file whatever a sensor asked for: its target is their content.
    Files arriving (a file_arrival trigger) may all be gone (processed and archived, dead-lettered):
    an empty inbox is nothing new; elsewhere no file at all is an error that says where it looked.
    """
    excluded = dead_letter_prefix(location, spec.file_arrival)
    if (requested is None or not spec.incremental_files) and spec.file_arrival is not None:
        files = sorted(location.matching(excluded), key=lambda f: f.key)
        if not files:
            return LoadInput(None, nothing_new=f"no files waiting in {location.url}")
    elif requested is None or not spec.incremental_files:
        files = [f for f in location.files() if not f.key.startswith(excluded)]
    else:
        wanted = set(requested)
        files = sorted((f for f in location.matching(excluded) if f.url in wanted), key=lambda f: f.key)
        if not files:
            return LoadInput(None, nothing_new="the requested files are gone (moved to the dead-letter prefix, or deleted)")
    incremental = spec.incremental_files and not full_refresh
    if incremental:
        files = FileState(warehouse, spec.id).pending(files)
        if not files:
            return LoadInput(None, nothing_new=f"no new or changed files in {location.url}")
    processed = ProcessedFiles(files, exclusive=incremental, reset=full_refresh)
    return LoadInput(open_file_source(spec.source, files, location.store, processed), files)


def plan_query(spec: PipelineSpec, warehouse: Warehouse, full_refresh: bool, secrets: Mapping[str, str]) -> LoadInput:
    """A SQL source; incremental ones read from the high-water mark minus the look-back."""
    source_spec: SqlSource = spec.source
    incremental = source_spec.incremental
    if incremental is None:
        return LoadInput(SqlQuerySource(source_spec, warehouse, secrets))
    mark = None if full_refresh else saved_mark(saved_position(warehouse, spec.id), incremental.cursor)
    try:
        since = mark.minus(incremental.lookback_value) if mark is not None else None
    except ValueError as exc:
        raise SourceError(f"{spec.origin}: source.incremental.lookback: {exc}") from None
    return LoadInput(SqlQuerySource(source_spec, warehouse, secrets, since, reset=full_refresh))
