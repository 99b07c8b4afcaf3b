"""Alerts: a failure of a pipeline as a message, and its delivery to webhook and Slack receivers.

The engine side only (no Dagster): sensors/alerts.py finds the failures in the Dagster instance
and hands them here (docs/architecture.md, "Layers").
"""

from etl_platform.alerts.alert import Alert
from etl_platform.alerts.delivery import AlertDeliveryError, deliver

__all__ = ["Alert", "AlertDeliveryError", "deliver"]
