"""Sensors and schedules that start pipeline and dbt runs."""

from sensors.alerts import alert_sensors
from sensors.change_capture import change_capture_sensor
from sensors.file_arrival import file_arrival_sensor
from sensors.partition_folders import partition_folders_sensor
from sensors.run_spans import run_span_sensors
from sensors.schedules import dbt_schedule, pipeline_schedules
from sensors.streams import stream_sensor

__all__ = [
    "alert_sensors",
    "change_capture_sensor",
    "dbt_schedule",
    "file_arrival_sensor",
    "partition_folders_sensor",
    "pipeline_schedules",
    "run_span_sensors",
    "stream_sensor",
]
