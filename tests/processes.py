"""Stopping what a test started: the whole process group, asked first, then told."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess


def stop_group(process: subprocess.Popen, grace_seconds: float = 20) -> None:
    """SIGTERM to the process's group (it was started with `start_new_session=True`), then SIGKILL to
    whatever of it is left after `grace_seconds`: a code server that ignores SIGTERM, or a process
    the loaded machine has not scheduled yet, must not outlive the test."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(grace_seconds)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)
