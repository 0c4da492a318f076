"""Measure how long each route takes to return 503 while Redis is stopped, and to recover.

Run from the repository root: .venv/bin/python -m bench.broker_outage_latency
It starts its own Redis-compatible server, worker and API on loopback ports in a temporary folder.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import httpx

from fasttask.embedded import EmbeddedRedis
from tests.conftest import build_service, free_port

REQUESTS_PER_ROUTE = 20


def timed(client: httpx.Client, method: str, path: str, **options: object) -> tuple[int, float]:
    started = time.perf_counter()
    response = client.request(method, path, **options)
    return response.status_code, time.perf_counter() - started


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="fasttask-bench-"))
    redis_server = EmbeddedRedis(free_port(), root / "redis")
    redis_server.start()
    service = build_service(root / "service", redis_server.port)
    try:
        service.start_worker()
        service.start_api()
        service.wait_until_worker_serves()
        with service.client(timeout_s=30) as client:
            task_id = client.post("/create/noop", json={}).json()["id"]
            routes = [
                ("POST", "/create/noop", {"json": {}}),
                ("POST", "/run/noop", {"json": {}}),
                ("GET", "/check/noop", {"params": {"result_id": task_id}}),
                ("GET", "/health", {}),
            ]
            redis_server.stop()
            for method, path, options in routes:
                results = [timed(client, method, path, **options) for _ in range(REQUESTS_PER_ROUTE)]
                statuses = sorted({status for status, _ in results})
                seconds = [elapsed for _, elapsed in results]
                print(f"{method} {path}: statuses {statuses}, max {max(seconds):.3f} s, mean {sum(seconds) / len(seconds):.3f} s")

            outage_ended = time.perf_counter()
            redis_server.start()
            while client.get("/health").status_code != 200:
                time.sleep(0.05)
            print(f"/health back to 200 {time.perf_counter() - outage_ended:.2f} s after Redis started")
    finally:
        service.stop()
        redis_server.stop()


if __name__ == "__main__":
    main()
