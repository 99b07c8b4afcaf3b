"""A partitioned pipeline's Dagster side: its PartitionsDefinition and its concurrency pool.

The spec says the partitions (etl_platform.spec.partitions); Dagster's definitions give the
backfill machinery (the UI's partition picker, `dagster job backfill`, `etl backfill`) the keys.
"""

from __future__ import annotations

import datetime

from dagster import (
    DailyPartitionsDefinition,
    DynamicPartitionsDefinition,
    HourlyPartitionsDefinition,
    PartitionsDefinition,
    StaticPartitionsDefinition,
)

from etl_platform.spec import PipelineSpec
from etl_platform.spec.partitions import KEY_FORMATS, TimeWindows


def _moment(value: datetime.date | datetime.datetime | None, fmt: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, datetime.datetime):
        value = datetime.datetime.combine(value, datetime.time())
    return value.strftime(fmt)


def partitions_definition(spec: PipelineSpec) -> PartitionsDefinition | None:
    """Daily or hourly windows in the spec's timezone, its static keys, or its dynamic keys (kept in
    the instance under `dynamic_name`, added by sensors.partition_folders); None if unpartitioned."""
    partitions = spec.partitions
    if partitions is None:
        return None
    if partitions.dynamic is not None:
        return DynamicPartitionsDefinition(name=dynamic_name(spec.id))
    if partitions.static is not None:
        return StaticPartitionsDefinition(partitions.static)
    windows: TimeWindows = partitions.windows
    kind = DailyPartitionsDefinition if partitions.kind == "daily" else HourlyPartitionsDefinition
    fmt = KEY_FORMATS[partitions.kind]
    return kind(start_date=_moment(windows.start, fmt), end_date=_moment(windows.end, fmt), timezone=windows.timezone, fmt=fmt)


def pool_name(spec: PipelineSpec) -> str:
    """One load of a dataset at a time (`dataset_<schema>_<table>`, limit 1 in dagster.yaml). A
    partitioned dataset's loads share `partitions_<schema>_<table>`: partitions publish disjoint
    slices under the dataset's lock, so its limit (`etl backfill --parallel`) is how many load at once."""
    name = spec.destination.dataset.replace(".", "_")
    return f"partitions_{name}" if spec.partitions else f"dataset_{name}"


def dynamic_name(pipeline_id: str) -> str:
    """The name the instance keeps a pipeline's dynamic partition keys under."""
    return f"{pipeline_id}_folders"
