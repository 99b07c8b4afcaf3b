"""Cron schedules from pipelines' `schedule:` sections, on each pipeline's job."""

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
