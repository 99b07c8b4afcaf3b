"""Whether a pipeline's job already has a run on its way, for sensors that allow one run at a time.

A change-capture slot or a stream is read from one saved position, so a second run started before
the first publishes would read the same range: the sensors of those sources wait instead. Any run
of the job counts, whoever launched it (this sensor, another, the UI), and so does a run being
cancelled, which may still publish.
"""

from __future__ import annotations

from dagster import DagsterRun, DagsterRunStatus, RunsFilter, SensorEvaluationContext

UNFINISHED_RUN_STATUSES = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]


def unfinished_run(context: SensorEvaluationContext, job_name: str) -> DagsterRun | None:
    """The newest run of `job_name` that has not finished, if any."""
    runs = context.instance.get_runs(filters=RunsFilter(job_name=job_name, statuses=UNFINISHED_RUN_STATUSES), limit=1)
    return runs[0] if runs else None
