"""Redis stops while requests arrive: quick 503s naming the broker, then recovery with no restart."""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path

import httpx
import pytest

from fasttask.embedded import EmbeddedRedis
from tests.conftest import build_service
from tests.faults.conftest import wait_for_final

# The promise under test: every request gets a response within this many seconds while Redis is down.
ANSWER_WITHIN_S = 5.0
TASKS_BEFORE_OUTAGE = 20
LIMITS = {"SOFT_TIME_LIMIT": "6", "TIME_LIMIT": "8", "VISIBILITY_TIMEOUT": "10", "RUN_TIMEOUT": "20"}


def requests_during_outage(task_id: str) -> list[tuple[str, str, dict]]:
    return [
        ("POST", "/create/sleep_for", {"json": {"seconds": 0}}),
        ("POST", "/run/noop", {"json": {}}),
        ("GET", "/check/sleep_for", {"params": {"result_id": task_id}}),
        ("GET", "/check/sleep_for", {"params": {"result_id": task_id, "wait": 3}}),
        ("GET", "/health", {}),
    ]


def wait_until_healthy(client: httpx.Client, timeout_s: float = 60.0) -> int:
    deadline = time.monotonic() + timeout_s
    status_code = 0
    while time.monotonic() < deadline:
        try:
            status_code = client.get("/health").status_code
        except httpx.TransportError:
            status_code = 0
        if status_code == 200:
            return status_code
        time.sleep(0.5)
    return status_code


@pytest.mark.slow
def test_redis_outage_returns_503_then_recovers(private_redis: EmbeddedRedis, tmp_path: Path) -> None:
    service = build_service(tmp_path, private_redis.port, **LIMITS)
    broker_address = f"127.0.0.1:{private_redis.port}"
    try:
        service.start_worker()
        service.start_api()
        service.wait_until_worker_serves()
        with service.client(timeout_s=ANSWER_WITHIN_S) as client:
            created = [
                client.post("/create/sleep_for", json={"seconds": 0.5}) for _ in range(TASKS_BEFORE_OUTAGE)
            ]
            task_ids = [response.json()["id"] for response in created]
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                waiting_run = pool.submit(client.post, "/run/sleep_for", json={"seconds": 1})
                time.sleep(0.5)
                private_redis.stop()

                during = [
                    (method, path, client.request(method, path, **options))
                    for method, path, options in requests_during_outage(task_ids[-1])
                    for _ in range(2)
                ]
                waiting_run_status = waiting_run.result().status_code

            private_redis.start()
            healthy = wait_until_healthy(client)
        with service.client() as client:
            after = client.post("/run/noop", json={})
            finals = [wait_for_final(client, "sleep_for", task_id) for task_id in task_ids]
    finally:
        service.stop()

    assert [response.status_code for response in created] == [200] * TASKS_BEFORE_OUTAGE
    for method, path, response in during:
        assert response.status_code == 503, (method, path, response.text)
        assert f"broker at redis://127.0.0.1:{private_redis.port}" in response.json()["detail"], response.text
        assert response.headers["Retry-After"] == "5"
    assert broker_address
    assert waiting_run_status in (200, 503)
    assert healthy == 200
    assert after.status_code == 200
    assert after.json()["state"] == "SUCCESS"
    assert [final.get("state") for final in finals] == ["SUCCESS"] * TASKS_BEFORE_OUTAGE, finals


def wait_until_started(client: httpx.Client, task_ids: list[str], timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        states = [client.get("/check/sleep_for", params={"result_id": task_id}).json()["state"] for task_id in task_ids]
        if states == ["STARTED"] * len(task_ids):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_worker_survives_restart_with_tasks_running(private_redis: EmbeddedRedis, tmp_path: Path, pool: str) -> None:
    """The worker outlives a restart while it runs tasks, and finishes them.

    Closing the broken connection puts the unacknowledged messages back. With kombu 5.7's own
    Redis channel that step raised AttributeError and stopped the worker.
    """
    service = build_service(tmp_path, private_redis.port)
    try:
        worker = service.start_worker(WORKER_POOL=pool, WORKER_CONCURRENCY="4")
        service.start_api()
        service.wait_until_worker_serves()
        with service.client() as client:
            task_ids = [client.post("/create/sleep_for", json={"seconds": 5}).json()["id"] for _ in range(2)]
            started = wait_until_started(client, task_ids)

            private_redis.stop()
            time.sleep(3)
            private_redis.start()

            healthy = wait_until_healthy(client)
            after = client.post("/run/noop", json={}, params={"timeout": 60})
            finals = [wait_for_final(client, "sleep_for", task_id) for task_id in task_ids]
        worker_alive = worker.process.poll() is None
        worker_log = worker.log_text()
    finally:
        service.stop()

    assert started
    assert healthy == 200
    assert worker_alive, worker_log[-3000:]
    assert "Unrecoverable error" not in worker_log
    assert after.status_code == 200, after.text
    assert after.json()["state"] == "SUCCESS"
    assert [final.get("state") for final in finals] == ["SUCCESS", "SUCCESS"], finals
