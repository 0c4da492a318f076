"""Start child processes that end with their parent, and stop them cleanly."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
from typing import Optional, Sequence

logger = logging.getLogger("fasttask.processes")

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Linux only: the kernel sends SIGTERM to the child when its parent dies, even by SIGKILL.
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start_child(command: Sequence[str], env: Optional[dict[str, str]] = None, name: str = "") -> subprocess.Popen:
    logger.info("starting %s (pid follows)", name or command[0])
    process = subprocess.Popen(list(command), env=env, preexec_fn=_die_with_parent)
    logger.info("started %s, pid %d", name or command[0], process.pid)
    return process


def stop_child(process: subprocess.Popen, timeout_s: float = 15.0, name: str = "") -> None:
    """Send SIGTERM, then SIGKILL when the process has not exited within timeout_s."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        logger.warning("%s (pid %d) did not stop within %.0f s; killing it", name, process.pid, timeout_s)
        process.kill()
        process.wait()


def python_module_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "fasttask", *arguments]


def current_environment(**overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(overrides)
    return env
