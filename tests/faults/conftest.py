"""Fixtures for fault tests: a private Redis-compatible server and helpers that kill processes."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Iterator

import httpx
import psutil
import pytest

from fasttask.embedded import EmbeddedRedis
from tests.conftest import ManagedProcess, free_port

FINAL_STATES = {"SUCCESS", "FAILURE", "REVOKED"}


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis-compatible server with append-only persistence that only this test uses and may stop."""
    server = EmbeddedRedis(free_port(), tmp_path / "redis-data", append_only=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def record_dir(tmp_path: Path) -> Path:
    """Folder where the record_run task writes one line per run."""
    path = tmp_path / "records"
    path.mkdir()
    return path


def kill_process_tree(process: ManagedProcess) -> None:
    """SIGKILL a worker's main process and every pool process under it, leaving no time to clean up."""
    root = psutil.Process(process.process.pid)
    victims = [root, *root.children(recursive=True)]
    for victim in victims:
        try:
            victim.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    process.process.wait()
    psutil.wait_procs(victims, timeout=10)


def wait_for_lines(path: Path, count: int, timeout_s: float = 60.0) -> list[str]:
    """Wait until the file has at least `count` lines and return them."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists():
            lines = path.read_text(encoding="ascii").splitlines()
            if len(lines) >= count:
                return lines
        time.sleep(0.05)
    raise AssertionError(f"{path} did not reach {count} lines within {timeout_s} s")


def wait_for_final(client: httpx.Client, task: str, task_id: str, timeout_s: float = 120.0) -> dict:
    """Long-poll /check until the task is in a final state; return the last status seen."""
    deadline = time.monotonic() + timeout_s
    status = {}
    while time.monotonic() < deadline:
        response = client.get(f"/check/{task}", params={"result_id": task_id, "wait": 10})
        if response.status_code == 200:
            status = response.json()
            if status["state"] in FINAL_STATES:
                return status
        else:
            time.sleep(0.5)
    return status
