"""Cron schedules: one per pipeline `schedule:` section, on the pipeline's job, and the dbt layer's daily build."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dagster import DefaultScheduleStatus, ScheduleDefinition

from etl_platform.spec import PipelineRegistry

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition


def pipeline_schedules(registry: PipelineRegistry, jobs: dict[str, UnresolvedAssetJobDefinition]) -> list[ScheduleDefinition]:
    """One schedule per scheduled pipeline, running in the pipeline's timezone; on once the daemon runs."""
    return [
        ScheduleDefinition(
            name=f"{spec.id}_schedule",
            job=jobs[spec.id],
            cron_schedule=spec.schedule.cron,
            execution_timezone=spec.schedule.timezone,
            default_status=DefaultScheduleStatus.RUNNING,
            description=f"Runs pipeline {spec.id} at '{spec.schedule.cron}' ({spec.schedule.timezone})",
        )
        for spec in registry
        if spec.schedule
    ]


# The marts are rebuilt every morning, after the night's loads, besides whenever an upstream dataset publishes.
DBT_DAILY_CRON = "0 6 * * *"
DBT_TIMEZONE = "Europe/Berlin"


def dbt_schedule(job: UnresolvedAssetJobDefinition) -> ScheduleDefinition:
    """The daily `dbt build` of every model and test."""
    return ScheduleDefinition(
        name="dbt_daily_schedule",
        job=job,
        cron_schedule=DBT_DAILY_CRON,
        execution_timezone=DBT_TIMEZONE,
        default_status=DefaultScheduleStatus.RUNNING,
        description=f"Builds the dbt models and runs their tests at '{DBT_DAILY_CRON}' ({DBT_TIMEZONE})",
    )
