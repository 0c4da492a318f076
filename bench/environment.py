"""Start and stop the processes a benchmark run measures: Redis, the API, FastTask and bare workers."""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import psutil
import redis

from bench.clients import HttpSession, basic_auth_header
from fasttask.embedded import EmbeddedRedis
from fasttask.processes import stop_child
from fasttask.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BENCH_TASK_MODULES = [PROJECT_ROOT / "tests" / "task_modules" / name for name in ("noop.py", "sleep_for.py")]

FASTTASK_DB = 0
BARE_DB = 1

BENCH_USER = "bench"

logger = logging.getLogger("bench.environment")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_environment(**overrides: str) -> dict[str, str]:
    """Return os.environ without any FastTask setting a developer exported, plus the overrides."""
    setting_names = {name.upper() for name in Settings.model_fields}
    env = {key: value for key, value in os.environ.items() if key.upper() not in setting_names}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    env.update(overrides)
    return env


@dataclass
class BenchProcess:
    """A child process with its output in a log file under the run's folder."""

    name: str
    process: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        stop_child(self.process, name=self.name)

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            tail = self.log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
            raise RuntimeError(f"{self.name} exited with code {self.process.returncode}; log tail:\n{tail}")


@dataclass
class BenchEnvironment:
    """One Redis-compatible server shared by FastTask (db 0) and the bare baseline (db 1)."""

    root: Path
    redis_server: Optional[EmbeddedRedis] = None
    api: Optional[BenchProcess] = None
    api_port: int = 0
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    processes: list[BenchProcess] = field(default_factory=list)

    @property
    def tasks_dir(self) -> Path:
        return self.root / "tasks"

    @property
    def files_dir(self) -> Path:
        return self.root / "files"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    @property
    def redis_port(self) -> int:
        assert self.redis_server is not None
        return self.redis_server.port

    @property
    def authorization(self) -> str:
        return basic_auth_header(BENCH_USER, self.password)

    def prepare(self) -> None:
        """Write the tasks folder and the users file, and start the Redis-compatible server."""
        self.tasks_dir.mkdir(parents=True)
        for module in BENCH_TASK_MODULES:
            shutil.copy(module, self.tasks_dir / module.name)
        self.files_dir.mkdir(parents=True)
        (self.files_dir / "user_to_passwd.json").write_text(json.dumps({BENCH_USER: self.password}), encoding="utf-8")
        self.log_dir.mkdir(parents=True)

        self.redis_server = EmbeddedRedis(free_port(), self.root / "redis")
        self.redis_server.start()

    def redis_client(self, db: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.redis_port, db=db)

    def fasttask_environment(self, **overrides: str) -> dict[str, str]:
        return clean_environment(
            MASTER_HOST="127.0.0.1",
            TASK_QUEUE_PORT=str(self.redis_port),
            TASK_QUEUE_DB=str(FASTTASK_DB),
            TASKS_DIR=str(self.tasks_dir),
            FILES_DIR=str(self.files_dir),
            HOST="127.0.0.1",
            PORT=str(self.api_port),
            **overrides,
        )

    def start_api(self) -> BenchProcess:
        self.api_port = free_port()
        self.api = self._start("api", [sys.executable, "-m", "fasttask", "api"], self.fasttask_environment())
        self._wait_for_health()
        return self.api

    def start_fasttask_worker(self, name: str, **overrides: str) -> BenchProcess:
        env = self.fasttask_environment(**overrides)
        return self._start(name, [sys.executable, "-m", "fasttask", "worker"], env)

    def find_running(self, name: str) -> Optional[BenchProcess]:
        for process in self.processes:
            if process.name == name and process.process.poll() is None:
                return process
        return None

    def start_bare_worker(self, name: str, pool: str, concurrency: int, queues: str) -> BenchProcess:
        """Start `celery -A bench.bare_app worker` with the arguments FastTask's worker uses."""
        env = clean_environment(
            BENCH_BARE_REDIS_PORT=str(self.redis_port),
            BENCH_BARE_REDIS_DB=str(BARE_DB),
            BENCH_TASKS_DIR=str(self.tasks_dir),
        )
        arguments = [
            sys.executable, "-m", "celery", "-A", "bench.bare_app", "worker",
            "--queues", queues, "--concurrency", str(concurrency), "--pool", pool,
            "--hostname", f"{name}@%h", "--loglevel", "INFO", "--without-gossip",
        ]
        return self._start(name, arguments, env)

    def session(self, timeout_s: float = 120.0) -> HttpSession:
        return HttpSession(self.api_port, self.authorization, timeout_s)

    def api_process(self) -> psutil.Process:
        assert self.api is not None
        return psutil.Process(self.api.pid)

    def stop_process(self, process: BenchProcess) -> None:
        process.stop()
        self.processes.remove(process)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        if self.redis_server is not None:
            self.redis_server.stop()

    def _start(self, name: str, arguments: list[str], env: dict[str, str]) -> BenchProcess:
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "ab") as log_file:
            process = subprocess.Popen(arguments, env=env, cwd=PROJECT_ROOT, stdout=log_file, stderr=subprocess.STDOUT)
        started = BenchProcess(name, process, log_path)
        self.processes.append(started)
        logger.info("started %s, pid %d, log %s", name, process.pid, log_path)
        return started

    def _wait_for_health(self, timeout_s: float = 60.0) -> None:
        assert self.api is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.api.check_alive()
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.api_port}/health", timeout=1).read()
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        raise RuntimeError(f"the API did not respond to /health within {timeout_s:.0f} s; see {self.api.log_path}")
