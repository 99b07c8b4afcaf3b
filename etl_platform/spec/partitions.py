"""A pipeline's partitions: daily or hourly time windows, a static list of keys, or dynamic keys (landing sub-folders).

One partition is one slice of the dataset: a load of it reads only its slice (a file path with
the key in it, or a predicate on a sql source's column), publishes only its slice (rows carry the
key in the partition column) and keeps its own checkpoint and load history, because its state key
is the pipeline id joined with the partition key (docs/architecture.md, "Partitioned pipelines").
The Dagster layer turns this into the asset's PartitionsDefinition; the engine only needs the slice.
"""

from __future__ import annotations

import datetime
import re
import string
from dataclasses import dataclass
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, StringConstraints, field_validator, model_validator

from etl_platform.spec.base import ColumnName, Strict

# Dagster's key formats for daily and hourly partitions: a key is a window's start.
KEY_FORMATS = {"daily": "%Y-%m-%d", "hourly": "%Y-%m-%d-%H:%M"}
WINDOWS = {"daily": datetime.timedelta(days=1), "hourly": datetime.timedelta(hours=1)}
# What a file source's path may name: the key, or the parts of a time window's start.
TIME_FIELDS = {"partition", "year", "month", "day", "hour"}


def state_key(pipeline_id: str, partition_key: str) -> str:
    """The id a partition's loads are kept under (checkpoint, file records, load history, quarantine)."""
    return f"{pipeline_id}@{partition_key}"


def pipeline_of(key: str) -> str:
    """The pipeline a state key belongs to: itself, or the pipeline of a partition's `state_key`."""
    return key.partition("@")[0]


KEY_PATTERN = r"^[A-Za-z0-9_.-]{1,63}$"
StaticKey = Annotated[str, StringConstraints(pattern=KEY_PATTERN)]
# A dynamic partition is a sub-folder: `{partition}` is one whole folder of the path.
FOLDER_FIELD = re.compile(r"(?:^|/)\{partition\}/")


class TimeWindows(Strict):
    start: datetime.date | datetime.datetime = Field(description="the first window's start, e.g. 2024-01-01")
    end: datetime.date | datetime.datetime | None = Field(None, description="no window starts at or after this; default: now")
    timezone: str = Field("UTC", description="IANA name: windows start at midnight (or the hour) there")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {zone!r}; use an IANA name such as UTC or Europe/Berlin") from None
        return zone


class DynamicKeys(Strict):
    """Keys that appear while the pipeline lives: one per sub-folder (a tenant's, a day's export)
    where the source path says `{partition}`; the sensor sensors.partition_folders adds them."""

    per: Literal["folder"] = Field("folder", description="where the keys come from: the sub-folders at `{partition}`")
    interval_seconds: int = Field(30, ge=1, description="how often the landing zone is listed for new or changed folders")


class Partitions(Strict):
    """Exactly one of daily, hourly, static or dynamic; `column` holds each row's key in the target."""

    daily: TimeWindows | None = None
    hourly: TimeWindows | None = None
    static: list[StaticKey] | None = Field(None, description="the keys: tenants, regions, landing sub-folders")
    dynamic: DynamicKeys | None = Field(None, description="one key per landing sub-folder, added as folders appear")
    column: ColumnName = Field("_etl_partition", description="the target's column that holds each row's partition key")
    source_column: ColumnName | None = Field(
        None, description="sql sources: the column a partition selects its rows by (a window's range, or equal to the key)"
    )

    @model_validator(mode="after")
    def _check(self) -> Partitions:
        kinds = [k for k in ("daily", "hourly", "static", "dynamic") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"declare exactly one of daily, hourly, static or dynamic (got {kinds or 'none'})")
        if self.static is not None and (not self.static or len(set(self.static)) != len(self.static)):
            raise ValueError("static partitions need at least one key, each once")
        return self

    @property
    def kind(self) -> Literal["daily", "hourly", "static", "dynamic"]:
        return "daily" if self.daily else "hourly" if self.hourly else "dynamic" if self.dynamic else "static"

    @property
    def windows(self) -> TimeWindows | None:
        return self.daily or self.hourly

    def slice(self, key: str) -> PartitionSlice:
        """The slice of one key; a key outside the partitions is an error that says what they are."""
        windows = self.windows
        if self.dynamic is not None:
            if not re.match(KEY_PATTERN, key):
                raise ValueError(f"partition {key!r} is not a folder name of letters, digits, '_', '.' or '-' (at most 63)")
            return PartitionSlice(key, self.column, None, None)
        if windows is None:
            if key not in (self.static or []):
                raise ValueError(f"partition {key!r} is not one of {self.static}")
            return PartitionSlice(key, self.column, None, None)
        try:
            naive = datetime.datetime.strptime(key, KEY_FORMATS[self.kind])
        except ValueError:
            raise ValueError(f"partition {key!r} is not a {self.kind} key such as {_example(self.kind)}") from None
        start = naive.replace(tzinfo=ZoneInfo(windows.timezone))
        return PartitionSlice(key, self.column, start, start + WINDOWS[self.kind])


def _example(kind: str) -> str:
    return datetime.datetime(2024, 1, 31, 0, 0).strftime(KEY_FORMATS[kind])


@dataclass(frozen=True)
class PartitionSlice:
    """One partition's key, the target column that holds it, and (time windows) its [start, end)."""

    key: str
    column: str
    start: datetime.datetime | None
    end: datetime.datetime | None

    def path(self, template: str) -> str:
        """A file source's path for this slice: `{partition}`, and for windows `{year}` `{month}` `{day}` `{hour}`."""
        values = {"partition": self.key}
        if self.start is not None:
            values |= {"year": f"{self.start:%Y}", "month": f"{self.start:%m}", "day": f"{self.start:%d}"}
            values["hour"] = f"{self.start:%H}"
        return template.format_map(values)


def placeholders(template: str) -> set[str]:
    """The `{name}` fields of a path template (glob braces like `{a,b}` are not fields: they hold a comma)."""
    try:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name}
    except ValueError:
        return set()


def check_partitioned(partitions: Partitions, source_type: str, path: str | None, is_file: bool) -> None:
    """What a partitioned pipeline needs: a way to read only its slice, and a warehouse table to publish it."""
    if is_file:
        raise ValueError("partitions publish into a warehouse table: a file destination cannot replace one slice")
    if partitions.dynamic is not None and source_type == "sql":
        raise ValueError("dynamic partitions are landing sub-folders: a sql source takes `static:` keys instead")
    if source_type == "sql":
        if partitions.source_column is None:
            raise ValueError("a partitioned sql source needs `partitions.source_column`: the column its slice is selected by")
        return
    if partitions.source_column is not None:
        raise ValueError("`partitions.source_column` selects a sql source's rows; a file source puts {partition} in its path")
    if source_type == "frame":
        raise ValueError("a frame pipeline cannot be partitioned: its function returns all of its rows")
    if source_type in ("rest", "postgres_cdc", "mariadb_cdc", "stream"):
        raise ValueError(f"a {source_type} source cannot be partitioned: it reads on from its saved position, not one slice")
    fields = placeholders(path or "")
    allowed = TIME_FIELDS if partitions.windows else {"partition"}
    if not fields:
        raise ValueError("a partitioned file source names its slice in `source.path`, e.g. orders/{partition}/*.csv")
    if fields - allowed:
        extra = sorted(fields - allowed)
        raise ValueError(f"`source.path` names {extra}; a {partitions.kind} partition offers {sorted(allowed)}")
    if partitions.dynamic is not None:
        check_folder_path(path or "")


def check_folder_path(path: str) -> None:
    """A dynamic partition is a sub-folder: `{partition}` is a whole folder below a literal one."""
    found = FOLDER_FIELD.search(path)
    if found is None:
        raise ValueError("dynamic partitions are sub-folders: put {partition} as a whole folder, e.g. tenants/{partition}/*.csv")
    if any(mark in path[: found.start()] for mark in "*?["):
        raise ValueError(
            "dynamic partitions: the folders above {partition} must be literal (no wildcard), e.g. tenants/{partition}/*.csv"
        )


def folder_glob(path: str) -> str:
    """The path with `{partition}` as a wildcard: every partition's files, to find the sub-folders."""
    return path.replace("{partition}", "*")


def unpartitioned_path(path: str | None) -> None:
    """A path without partitions must not hold placeholders: they would be read as literal braces."""
    fields = placeholders(path or "") & TIME_FIELDS
    if fields:
        raise ValueError(f"`source.path` names {sorted(fields)}, which only a pipeline with `partitions:` fills in")
