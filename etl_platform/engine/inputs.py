"""What one load reads: which files (and which state says they are new), or which cursor range.

Incremental state lives in the warehouse (etl_platform.state) and advances in the publish
transaction; this module only decides the input from it, and how the publish advances it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from etl_platform.breaker import BreakerBoard
from etl_platform.errors import SourceError
from etl_platform.sources import Source, SqlQuerySource, open_file_source
from etl_platform.spec.models import FileArrival, PipelineSpec, SqlSource
from etl_platform.state import CursorState, FileState
from etl_platform.stores import FileLocation, FileStore, StoredFile
from etl_platform.warehouse import Warehouse


@dataclass
class LoadInput:
    """The source of one load, and how its publish advances the incremental state."""

    source: Source | None
    files: list[StoredFile] = field(default_factory=list)
    nothing_new: str | None = None
    advance: Callable[[Warehouse, str], None] = lambda warehouse, run_id: None


def watched_location(
    spec: PipelineSpec, landing: FileStore, s3_client: Callable[[], Any], breakers: BreakerBoard
) -> FileLocation:
    return FileLocation.of(spec.file_path, landing, s3_client, breakers)


def dead_letter_prefix(location: FileLocation, arrival: FileArrival | None) -> str:
    """Where a pipeline's failing files go: below the watched prefix, never matched by it."""
    return location.prefix + (arrival or FileArrival()).dead_letter_prefix.lstrip("/")


def plan_files(
    spec: PipelineSpec,
    warehouse: Warehouse,
    location: FileLocation,
    requested: list[str] | None,
    full_refresh: bool,
) -> LoadInput:
    """The files this load reads: the requested ones, or every match; incremental loads skip processed ones.

    A replace reads every matching file whatever a sensor asked for: its target is their content.
    """
    state = FileState(warehouse, spec.id)
    excluded = dead_letter_prefix(location, spec.file_arrival)
    if requested is None or not spec.incremental_files:
        files = [f for f in location.files() if not f.key.startswith(excluded)]
    else:
        wanted = set(requested)
        files = sorted((f for f in location.matching(excluded) if f.url in wanted), key=lambda f: f.key)
        if not files:
            return LoadInput(None, nothing_new="the requested files are gone (moved to the dead-letter prefix, or deleted)")
    incremental = spec.incremental_files and not full_refresh
    if incremental:
        files = state.pending(files)
        if not files:
            return LoadInput(None, nothing_new=f"no new or changed files in {location.url}")

    def advance(target: Warehouse, run_id: str) -> None:
        files_state = FileState(target, spec.id)
        if full_refresh:
            files_state.reset()
        files_state.mark_processed(files, run_id, exclusive=incremental)

    return LoadInput(open_file_source(spec.source, files, location.store), files, advance=advance)


def plan_query(spec: PipelineSpec, warehouse: Warehouse, full_refresh: bool, secrets: Mapping[str, str]) -> LoadInput:
    """A SQL source; incremental ones read from the high-water mark minus the look-back."""
    source_spec: SqlSource = spec.source
    incremental = source_spec.incremental
    mark = None if (incremental is None or full_refresh) else CursorState(warehouse, spec.id).get(incremental.cursor)
    try:
        since = mark.minus(incremental.lookback_value) if mark is not None else None
    except ValueError as exc:
        raise SourceError(f"{spec.origin}: source.incremental.lookback: {exc}") from None
    source = SqlQuerySource(source_spec, warehouse, secrets, since)
    if incremental is None:
        return LoadInput(source)

    def advance(target: Warehouse, run_id: str) -> None:
        CursorState(target, spec.id).advance(incremental.cursor, source.seen_max, run_id, reset=full_refresh)

    return LoadInput(source, advance=advance)
