"""When a pipeline runs besides on demand: a cron schedule, arriving files, or a webhook's report.

Triggers are single-key mappings (`- file_arrival: {...}`) like transform steps.
"""

from __future__ import annotations

import zoneinfo
from typing import Annotated

from croniter import croniter
from pydantic import Discriminator, Field, Tag, ValidationInfo, model_validator

from etl_platform.spec.base import DatasetName, Strict, single_key
from etl_platform.spec.reach import inside_allowed_roots


class Schedule(Strict):
    cron: str
    timezone: str = "UTC"

    @model_validator(mode="after")
    def _check(self) -> Schedule:
        if not croniter.is_valid(self.cron) or len(self.cron.split()) != 5:
            raise ValueError(f"{self.cron!r} is not a 5-field cron expression such as '0 2 * * *'")
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {self.timezone!r}; use an IANA name such as Europe/Berlin") from None
        return self


class FileArrival(Strict):
    """Run the pipeline when new or changed files arrive; each file is processed once per version."""

    bucket: str | None = Field(None, description="S3 bucket; omitted: the landing zone (a folder, or S3 in production)")
    prefix: str | None = Field(None, description="key prefix or folder to watch; omitted: the source's path")
    pattern: str = Field("*", description="glob below the prefix: *.csv, **/*.jsonl")
    interval_seconds: int = Field(10, ge=1, le=3600, description="how often the sensor lists the files")
    max_files_per_run: int = Field(100, ge=1, le=10_000)
    max_failures: int = Field(3, ge=1, le=100, description="failed runs before a file moves to the dead-letter prefix")
    dead_letter_prefix: str = Field("_dead_letter/", description="where failing files go, in the same store, error beside them")
    on_upstream_update: bool = Field(
        False,
        description="also run when a dataset the pipeline reads (a lookup, a dependency) publishes; "
        "by default a file-triggered pipeline runs when files arrive, and its lookups changing do not start it",
    )

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> FileArrival:
        if self.bucket is not None and self.prefix is None:
            raise ValueError("a file_arrival trigger with `bucket` needs `prefix` (use '' for the whole bucket)")
        if self.pattern != "*" and self.prefix is None:
            raise ValueError("`pattern` goes with `prefix`; without them the trigger watches the source's path (glob included)")
        if self.names_location:
            inside_allowed_roots(self.location(), info)
        return self

    @property
    def names_location(self) -> bool:
        return self.prefix is not None

    def location(self) -> str:
        """The watched files as a source path: `s3://bucket/prefix/pattern` or `prefix/pattern`."""
        prefix = self.prefix or ""
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        return f"s3://{self.bucket}/{prefix}{self.pattern}" if self.bucket else f"{prefix}{self.pattern}"


class FileArrivalTrigger(Strict):
    file_arrival: FileArrival = Field(default_factory=FileArrival)


class Webhook(Strict):
    """An outside system reports that `dataset` changed (Dagster's report_asset_materialization)."""

    dataset: DatasetName


class WebhookTrigger(Strict):
    webhook: Webhook


TRIGGER_KINDS = ("file_arrival", "webhook")

Trigger = Annotated[
    Annotated[FileArrivalTrigger, Tag("file_arrival")] | Annotated[WebhookTrigger, Tag("webhook")],
    Discriminator(
        single_key,
        custom_error_type="unknown_trigger",
        custom_error_message=f"each trigger is one key, one of: {', '.join(TRIGGER_KINDS)}",
    ),
]
