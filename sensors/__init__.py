"""Sensors and schedules that start pipeline runs."""

from sensors.file_arrival import file_arrival_sensor
from sensors.schedules import pipeline_schedules

__all__ = ["file_arrival_sensor", "pipeline_schedules"]
