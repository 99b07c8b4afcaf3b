"""The executor choice of assets/workers.py: celery (configured by celery.yaml) only with a broker set,
and every step tagged with the queue of its resource class, which the deployment's workers listen on."""

from __future__ import annotations

import os

from dagster_celery.cli import get_validated_config

from assets.workers import DEFAULT_QUEUE, ML_QUEUE, QUEUE_TAG
from etl_platform.definitions import ALL_PIPELINES_JOB, build_definitions
from etl_platform.settings import Settings
from tests.conftest import REPO

BROKER = "amqp://guest:guest@127.0.0.1:5672//"


def test_jobs_run_on_celery_only_when_a_broker_is_set_and_steps_carry_their_queue() -> None:
    with_broker = build_definitions(Settings.from_env({**os.environ, "ETL_CELERY_BROKER": BROKER}), with_dbt=False)
    job = with_broker.resolve_job_def(ALL_PIPELINES_JOB)
    assert job.executor_def.name == "celery"
    queues = {node.name: node.tags[QUEUE_TAG] for node in job.nodes}
    assert queues["analytics__customers"] == ML_QUEUE and queues["analytics__orders"] == DEFAULT_QUEUE
    environ = {key: value for key, value in os.environ.items() if key != "ETL_CELERY_BROKER"}
    without = build_definitions(Settings.from_env(environ), with_dbt=False)
    assert without.resolve_job_def(ALL_PIPELINES_JOB).executor_def.name == "multi_or_in_process_executor"


def test_celery_yaml_reads_the_broker_from_the_environment_and_defaults_to_the_default_queue(monkeypatch) -> None:
    monkeypatch.setenv("ETL_CELERY_BROKER", BROKER)
    config = get_validated_config(str(REPO / "celery.yaml"))
    assert config["broker"] == BROKER and "guest" not in (REPO / "celery.yaml").read_text()
    assert config["config_source"]["task_default_queue"] == DEFAULT_QUEUE and config["config_source"]["task_acks_late"]
