"""Decide, on each sensor tick, which arrived files to load, retry, or move to dead letter.

The warehouse's file state (etl_platform.state.files) is the truth about what was processed; it
advances only when a load publishes. The sensor's own cursor remembers only which files it has
handed to runs that have not finished, so a file is never requested twice while a run has it.
Listing every key on each tick (paged, 1,000 per S3 request) instead of "keys after the last
one" or "modified after the last time" is what makes the sensor miss nothing: keys that land
out of order, share a modification time, or arrive during a listing are all found next tick.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field

from etl_platform.engine.inputs import dead_letter_prefix
from etl_platform.spec.triggers import FileArrival
from etl_platform.state.files import DEAD_LETTER, FAILED_PERMANENTLY, PROCESSED, FileState
from etl_platform.stores import FileLocation, StoredFile


def file_token(file: StoredFile) -> str:
    """A file's identity for the cursor: URL and version (a re-upload is a new token)."""
    return f"{file.url}@{file.version}"


@dataclass
class ArrivalPlan:
    """What a tick does: new runs (each a list of files), files given up on, and the lag."""

    batches: list[list[StoredFile]] = field(default_factory=list)
    dead_letters: list[tuple[StoredFile, int, str | None]] = field(default_factory=list)
    pending: int = 0
    in_flight: int = 0
    oldest_pending_seconds: float | None = None

    def summary(self) -> str:
        lag = f"{self.oldest_pending_seconds:.0f}s" if self.oldest_pending_seconds is not None else "none"
        return (
            f"{self.pending} unprocessed file(s), {self.in_flight} in running loads, {len(self.batches)} new run(s), "
            f"{len(self.dead_letters)} moved to dead letter; oldest unprocessed file waits {lag}"
        )


def plan_arrivals(
    location: FileLocation,
    state: FileState,
    arrival: FileArrival,
    in_flight: set[str],
    now: datetime.datetime,
    batch_size: int | None = None,
) -> ArrivalPlan:
    """Group the files that are neither processed nor in flight into runs; give up on files that failed too often.

    A file that has failed before is retried in a run of its own, so one bad file cannot keep
    failing (and dead-lettering) the good files that arrived with it; but only if its failure was
    transient: one that would fail again the same way (a malformed header, a tripped breaker) goes
    to dead letter after that first failure.
    """
    listed = sorted(location.matching(excluded_prefix=dead_letter_prefix(location, arrival)), key=lambda f: f.key)
    records = state.records()
    plan = ArrivalPlan()
    fresh: list[StoredFile] = []
    for file in listed:
        record = records.get(file.url)
        same_version = record is not None and record.version == file.version
        if same_version and record.status in (PROCESSED, DEAD_LETTER):
            continue  # this version is done
        plan.pending += 1
        age = (now - file.modified).total_seconds()
        plan.oldest_pending_seconds = max(age, plan.oldest_pending_seconds or 0.0)
        if file_token(file) in in_flight:
            plan.in_flight += 1
            continue
        failures = record.failures if same_version else 0
        if failures >= arrival.max_failures or (same_version and record.status == FAILED_PERMANENTLY):
            plan.dead_letters.append((file, failures, record.last_error))
        elif failures:
            plan.batches.append([file])
        else:
            fresh.append(file)
    size = batch_size or arrival.max_files_per_run
    plan.batches += [fresh[i : i + size] for i in range(0, len(fresh), size)]
    return plan


def move_to_dead_letter(
    location: FileLocation, state: FileState, arrival: FileArrival, file: StoredFile, failures: int, error: str | None
) -> str:
    """Move the file under the dead-letter prefix, with `<name>.error.txt` beside it; returns its new key."""
    target = dead_letter_prefix(location, arrival) + file.key[len(location.prefix) :]
    note = (
        f"file: {file.url}\nversion: {file.version}\nfailed loads: {failures}\nmoved: "
        f"{datetime.datetime.now(datetime.UTC).isoformat()}\nlast error: {error or 'unknown'}\n"
        f"To retry: put a corrected file (changed content) back under {location.store.file_url(location.prefix)}\n"
    )
    location.store.put_bytes(target + ".error.txt", note.encode())
    location.store.move(file.key, target)
    state.mark_dead_letter(file, failures, error)
    return target


def finished_tokens(in_flight: dict[str, str], run_finished: Callable[[str], bool]) -> set[str]:
    """Cursor entries whose run has ended (success, failure or cancel): their files are decided by state again."""
    return {token for token, run_key in in_flight.items() if run_finished(run_key)}
