"""1,000 tasks created while the worker is SIGKILLed and restarted three times all succeed."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import pytest

from fasttask.embedded import EmbeddedRedis
from tests.conftest import Service, build_service
from tests.faults.conftest import kill_process_tree, wait_for_final

TASK_COUNT = 1000
WORKER_KILLS = 3
CREATING_THREADS = 8
LIMITS = {"SOFT_TIME_LIMIT": "3", "TIME_LIMIT": "4", "VISIBILITY_TIMEOUT": "5"}


def create_tasks(service: Service, count: int) -> list[str]:
    with service.client() as client:
        def create(index: int) -> str:
            response = client.post("/create/sleep_for", json={"seconds": 0.01})
            assert response.status_code == 200, response.text
            return response.json()["id"]

        with concurrent.futures.ThreadPoolExecutor(CREATING_THREADS) as pool:
            return list(pool.map(create, range(count)))


@pytest.mark.slow
def test_thousand_tasks_survive_three_worker_kills(private_redis: EmbeddedRedis, tmp_path: Path) -> None:
    service = build_service(tmp_path, private_redis.port, **LIMITS)
    batch_size = TASK_COUNT // (WORKER_KILLS + 1)
    task_ids: list[str] = []
    try:
        worker = service.start_worker()
        service.start_api()
        for _ in range(WORKER_KILLS):
            task_ids += create_tasks(service, batch_size)
            kill_process_tree(worker)
            worker = service.start_worker()
        task_ids += create_tasks(service, TASK_COUNT - len(task_ids))

        with service.client() as client:
            states = [wait_for_final(client, "sleep_for", task_id, timeout_s=300).get("state") for task_id in task_ids]
    finally:
        service.stop()

    assert len(set(task_ids)) == TASK_COUNT
    assert states.count("SUCCESS") == TASK_COUNT, {state: states.count(state) for state in set(states)}
