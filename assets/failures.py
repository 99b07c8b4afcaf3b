"""How a failed load ends its step: retried by the asset's RetryPolicy only if it may pass by itself.

The classification is the engine's (`etl_platform.retry.is_transient`, docs/how-a-run-works.md,
"Failures"); this module adds the one fact only the Dagster instance knows: whether the pipeline
has ever published. A refused warehouse connection is a stopped server if loads worked before,
and a wrong host or port if none ever did, so it is retried only in the first case.
"""

from __future__ import annotations

from collections.abc import Callable

from dagster import Failure

from etl_platform.errors import EtlError, WarehouseUnavailable, one_line
from etl_platform.retry import is_transient


def step_failure(error: Exception, published_before: Callable[[], bool]) -> Failure:
    """The Failure to raise for `error`: its message for the user, and whether the step may retry."""
    description = str(error) if isinstance(error, EtlError) else f"{type(error).__name__}: {one_line(error)}"
    transient = is_transient(error)
    if isinstance(error, WarehouseUnavailable) and error.endpoint is not None:
        transient = published_before()
        if not transient:
            description += f" (no load of this pipeline ever reached {error.endpoint}: taken for configuration, not retried)"
    elif not transient and not isinstance(error, EtlError):
        description += " (an internal error, not retried: the traceback is in the run's event log)"
    return Failure(description=description, allow_retries=transient)
