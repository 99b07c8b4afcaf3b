"""A dagster-celery cluster for tests: a RabbitMQ virtual host of its own and worker processes.

Each test gets its own vhost on the machine's RabbitMQ, so tests running side by side never take
each other's steps; the workers run the repository's `celery.yaml`, as deployments do.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import REPO
from tests.processes import stop_group
from tests.test_embedded_pools import BIN


def _rabbitmqctl(*arguments: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *arguments], check=True, capture_output=True, timeout=60)


@contextlib.contextmanager
def broker_vhost() -> Iterator[str]:
    """The AMQP URL of a fresh vhost (guest may use it), deleted afterwards."""
    vhost = f"etl_test_{uuid.uuid4().hex[:10]}"
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        _rabbitmqctl("delete_vhost", vhost)


def start_worker(name: str, queue: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    """One dagster-celery worker (one task at a time) in a process group of its own; stop it with
    `stop_group`, or kill the group to lose the worker with its step."""
    command = [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app", "-y", "celery.yaml"]
    command += ["-q", queue, "-n", name, "--", "--concurrency", "1"]
    # `dagster-celery worker start` runs `celery` found on PATH: this venv's.
    env = {**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"}
    with log.open("w") as output:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)


@contextlib.contextmanager
def workers(names: list[str], queue: str, env: dict[str, str], folder: Path) -> Iterator[dict[str, subprocess.Popen]]:
    """Workers by name, each logging to `folder/<name>.log`; all stopped afterwards."""
    started = {name: start_worker(name, queue, env, folder / f"{name}.log") for name in names}
    try:
        yield started
    finally:
        for process in started.values():
            stop_group(process)
