"""How one load runs beyond its spec and environment: the options `run_pipeline` takes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from etl_platform.sources import Source


@dataclass(frozen=True)
class Progress:
    pipeline: str
    rows_read: int
    bytes_read: int
    total_bytes: int | None


ProgressCallback = Callable[[Progress], None]
# Opens a source given by the caller from the pipeline's saved position (None: none yet, or a full refresh).
SourceOpener = Callable[[Any | None], Source]


def given(source: Source) -> SourceOpener:
    """A source the caller opened already (a frame, quarantined rows): it keeps no position to resume from."""
    return lambda _saved: source


@dataclass(frozen=True)
class RunOptions:
    """One load's options; the defaults are a plain scheduled load of the pipeline's own source.

    - `files` (URLs, from a file-arrival sensor) narrows a file source to those files.
    - `full_refresh` ignores and resets the incremental state; the load replaces the target's rows.
    - `source` replaces the spec's source: a Python function's frame, quarantined rows, or any
      source written against the checkpoint protocol (docs/architecture.md, "Source checkpoints").
    - `replay` marks quarantined rows coming back: a replace pipeline appends them, checks of a
      load's size are skipped, and rows that fail again are not quarantined twice.
    - `model`, a Pandera DataFrameModel, validates rows next to the pipeline's rules.
    - `launched_by` says who or what started the run (a Dagster user, schedule or sensor), for the audit trail.
    """

    run_id: str | None = None
    progress: ProgressCallback | None = None
    files: list[str] | None = None
    full_refresh: bool = False
    source: SourceOpener | None = None
    replay: bool = False
    model: type | None = None
    launched_by: str | None = None
