"""`python -m fasttask serve` (what fasttask/run.sh runs): one command starts and stops everything."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import PROJECT_ROOT, clean_environment, free_port, make_tasks_dir


def start_serve(tmp_path: Path, **overrides: str) -> tuple[subprocess.Popen, str, Path]:
    files_dir = tmp_path / "files"
    port = free_port()
    env = clean_environment(
        FILES_DIR=str(files_dir),
        TASKS_DIR=str(make_tasks_dir(tmp_path / "tasks", include_test_tasks=False)),
        PORT=str(port),
        HOST="127.0.0.1",
        WORKER_CONCURRENCY="1",
        **overrides,
    )
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "fasttask", "serve"], env=env, cwd=PROJECT_ROOT,
            stdout=log_file, stderr=subprocess.STDOUT,
        )
    return process, f"http://127.0.0.1:{port}", log_path


def wait_for_run(base_url: str, auth: tuple[str, str], process: subprocess.Popen, log_path: Path) -> httpx.Response:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log_path.read_text()
        try:
            response = httpx.post(f"{base_url}/run/get_circle_area", json={"r": 5}, auth=auth, timeout=30)
            if response.status_code == 200:
                return response
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"serve did not answer /run within 60 s:\n{log_path.read_text()}")


def read_generated_users(tmp_path: Path) -> dict[str, str]:
    """Wait for the users file that the first start creates, and read it."""
    users_file = tmp_path / "files" / "user_to_passwd.json"
    deadline = time.monotonic() + 30
    while not users_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return json.loads(users_file.read_text())


def descendants(process: subprocess.Popen) -> list[psutil.Process]:
    return psutil.Process(process.pid).children(recursive=True)


def assert_all_gone(processes: list[psutil.Process]) -> None:
    gone, alive = psutil.wait_procs(processes, timeout=20)
    assert not alive, f"processes left behind: {[(p.pid, p.name()) for p in alive]}"


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_serve_runs_example_on_embedded_redis_and_stops_cleanly(tmp_path: Path, stop_signal: signal.Signals) -> None:
    process, base_url, log_path = start_serve(tmp_path, TASK_QUEUE_PORT=str(free_port()))
    try:
        users = read_generated_users(tmp_path)
        assert list(users) == ["admin"]

        response = wait_for_run(base_url, ("admin", users["admin"]), process, log_path)

        assert response.json()["result"] == {"area": 78.53981633974483}
        children = descendants(process)
        assert any("valkey" in child.name() or "redis" in child.name() for child in children)
        assert "user_to_passwd.json" in log_path.read_text()
        assert users["admin"] not in log_path.read_text()
    finally:
        children = descendants(process) if process.poll() is None else []
        process.send_signal(stop_signal)
        process.wait(30)
    assert process.returncode == 0, log_path.read_text()
    assert_all_gone(children)


def test_serve_with_password_containing_special_characters(tmp_path: Path) -> None:
    password = "p@ss #:/ word"
    process, base_url, log_path = start_serve(tmp_path, TASK_QUEUE_PORT=str(free_port()), TASK_QUEUE_PASSWD=password)
    try:
        users = read_generated_users(tmp_path)

        response = wait_for_run(base_url, ("admin", users["admin"]), process, log_path)

        assert response.json()["state"] == "SUCCESS"
        assert password not in log_path.read_text()
    finally:
        process.terminate()
        process.wait(30)


def test_serve_with_master_host_starts_no_embedded_server(tmp_path: Path, redis_server) -> None:
    process, base_url, log_path = start_serve(
        tmp_path, MASTER_HOST="127.0.0.1", TASK_QUEUE_PORT=str(redis_server.port),
    )
    try:
        users = read_generated_users(tmp_path)

        wait_for_run(base_url, ("admin", users["admin"]), process, log_path)

        names = [child.name() for child in descendants(process)]
        assert not any("valkey" in name or "redis" in name for name in names), names
    finally:
        process.terminate()
        process.wait(30)


def test_serve_stops_when_embedded_server_dies(tmp_path: Path) -> None:
    process, base_url, log_path = start_serve(tmp_path, TASK_QUEUE_PORT=str(free_port()))
    try:
        users = read_generated_users(tmp_path)
        wait_for_run(base_url, ("admin", users["admin"]), process, log_path)
        children = descendants(process)
        server = next(child for child in children if "valkey" in child.name() or "redis" in child.name())

        server.kill()

        process.wait(60)
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(30)
    assert process.returncode != 0
    assert "embedded Redis-compatible server exited" in log_path.read_text()
    assert_all_gone(children)
