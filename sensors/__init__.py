"""Sensors and schedules that start pipeline runs."""

from sensors.schedules import pipeline_schedules

__all__ = ["pipeline_schedules"]
