"""Where a job's steps run: in local processes, or on dagster-celery workers by queue.

With a celery broker configured (`ETL_CELERY_BROKER`), every job of the code location runs its
steps on dagster-celery workers (docs/scaling.md): the same executor on one machine, in Docker
Compose and on Kubernetes, configured by the repository's `celery.yaml`, which the workers read
too. Each step goes to the queue of its resource class: whole-load steps (deduplicate,
detect_anomalies) hold a load in memory, so they go to `ml`, whose workers are fewer and larger;
everything else, dbt builds included, to `default`. Without a broker, jobs keep their local
executors. The pools (one load per dataset or partition, one dbt build) hold on either.
"""

from __future__ import annotations

import functools
from pathlib import Path

import yaml
from dagster import ExecutorDefinition
from dagster_celery import celery_executor

from etl_platform.spec import PipelineSpec
from etl_platform.spec.base import single_key

DEFAULT_QUEUE = "default"
ML_QUEUE = "ml"
# The op tag dagster-celery routes a step by.
QUEUE_TAG = "dagster-celery/queue"
CELERY_CONFIG_FILE = Path(__file__).resolve().parent.parent / "celery.yaml"
# The steps that hold a whole load; aggregate runs in DuckDB with a memory limit, so it stays.
MEMORY_HEAVY_STEPS = ("deduplicate", "detect_anomalies")


def queue_of(spec: PipelineSpec) -> str:
    """The celery queue of a pipeline's step."""
    heavy = any(single_key(step) in MEMORY_HEAVY_STEPS for step in spec.whole_load_transforms)
    return ML_QUEUE if heavy else DEFAULT_QUEUE


@functools.cache
def celery_workers_executor() -> ExecutorDefinition:
    """dagster-celery's executor configured as the workers are, from `celery.yaml` (read once)."""
    config = yaml.safe_load(CELERY_CONFIG_FILE.read_text())["execution"]["config"]
    return celery_executor.configured(config, name="celery")


def executor_for(celery_workers: bool, local: ExecutorDefinition) -> ExecutorDefinition:
    """The celery executor when workers are configured, else the job's local executor."""
    return celery_workers_executor() if celery_workers else local
