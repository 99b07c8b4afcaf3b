"""How a failed load ends its step: retried by the asset's RetryPolicy only if it may pass by itself.

The classification is the engine's (`etl_platform.retry.is_transient`, docs/how-a-run-works.md,
"Failures"); this module turns it into the Failure Dagster acts on, with the message the user sees.
"""

from __future__ import annotations

from dagster import Failure

from etl_platform.errors import EtlError, one_line, redact
from etl_platform.retry import is_transient


def step_failure(error: Exception) -> Failure:
    """The Failure to raise for `error`: its message for the user, and whether the step may retry."""
    description = str(error) if isinstance(error, EtlError) else f"{type(error).__name__}: {one_line(error)}"
    transient = is_transient(error)
    if not transient and not isinstance(error, EtlError):
        description += " (an internal error, not retried: the traceback is in the run's event log)"
    return Failure(description=redact(description), allow_retries=transient)
