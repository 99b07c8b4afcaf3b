"""Sensors and schedules that start pipeline and dbt runs."""

from sensors.file_arrival import file_arrival_sensor
from sensors.schedules import dbt_schedule, pipeline_schedules

__all__ = ["dbt_schedule", "file_arrival_sensor", "pipeline_schedules"]
