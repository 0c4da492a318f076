"""Concurrency limits per key (fasttask_concurrency_params) on real workers in several processes."""

from __future__ import annotations

import json
import uuid
from typing import Iterator, Optional

import httpx
import pytest
import redis

from fasttask.concurrency import ConcurrencyLimiter, ConcurrencyParams
from fasttask.embedded import EmbeddedRedis
from tests.conftest import Service, build_service

# A Redis database of its own, so the queues of this module's workers are not shared with
# the session-wide service.
REDIS_DB = 3
TASK = "record_interval"


@pytest.fixture(scope="module")
def two_workers(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """An API and two worker nodes with three processes each: six tasks can run at once."""
    running = build_service(tmp_path_factory.mktemp("concurrency"), redis_server.port, TASK_QUEUE_DB=str(REDIS_DB))
    try:
        running.start_worker(WORKER_CONCURRENCY="3", WORKER_NAME="first@concurrency")
        running.start_worker(WORKER_CONCURRENCY="3", WORKER_NAME="second@concurrency")
        running.start_api()
        running.wait_until_worker_serves()
        yield running
    finally:
        running.stop()


@pytest.fixture
def redis_client(redis_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    client = redis.Redis(host="127.0.0.1", port=redis_server.port, db=REDIS_DB)
    yield client
    client.close()


def limit(key: str, max_concurrency: int, countdown: float = 0.5, expire: float = 60) -> dict:
    return {"concurrency_key": key, "max_concurrency": max_concurrency, "countdown": countdown, "expire": expire}


def create_tasks(client: httpx.Client, count: int, record_key: str, concurrency: Optional[dict]) -> list[str]:
    task_ids = []
    for _ in range(count):
        body = {"seconds": 1.5, "record_key": record_key}
        if concurrency is not None:
            body["fasttask_concurrency_params"] = concurrency
        response = client.post(f"/create/{TASK}", json=body)
        assert response.status_code == 200, response.text
        task_ids.append(response.json()["id"])
    return task_ids


def wait_for_success(client: httpx.Client, task_ids: list[str]) -> None:
    for task_id in task_ids:
        response = client.get(f"/check/{TASK}", params={"result_id": task_id, "wait": 120})
        assert response.status_code == 200, response.text
        assert response.json()["state"] == "SUCCESS", response.text


def recorded_intervals(redis_client: redis.Redis, record_key: str) -> list[dict]:
    return [json.loads(item) for item in redis_client.lrange(record_key, 0, -1)]


def max_overlap(intervals: list[dict]) -> int:
    """Return the largest number of intervals that contain one instant."""
    # At equal times an end sorts before a start: a task that starts as another ends does not overlap it.
    events = sorted([(item["started"], 1) for item in intervals] + [(item["finished"], -1) for item in intervals])
    running = 0
    largest = 0
    for _, change in events:
        running += change
        largest = max(largest, running)
    return largest


def test_limit_caps_running_tasks_across_workers(two_workers: Service, redis_client: redis.Redis) -> None:
    record_key = f"test:intervals:{uuid.uuid4()}"

    with two_workers.client() as client:
        task_ids = create_tasks(client, 6, record_key, limit(f"key-{uuid.uuid4()}", 2))
        wait_for_success(client, task_ids)

    intervals = recorded_intervals(redis_client, record_key)
    assert len(intervals) == 6
    assert max_overlap(intervals) == 2
    assert len({item["pid"] for item in intervals}) >= 2, "the tasks ran in a single worker process"


def test_tasks_without_limit_run_together(two_workers: Service, redis_client: redis.Redis) -> None:
    """The control case: the same tasks overlap beyond 2 when no limit is given."""
    record_key = f"test:intervals:{uuid.uuid4()}"

    with two_workers.client() as client:
        task_ids = create_tasks(client, 6, record_key, None)
        wait_for_success(client, task_ids)

    intervals = recorded_intervals(redis_client, record_key)
    assert len(intervals) == 6
    assert max_overlap(intervals) > 2


def test_limit_applies_per_key(two_workers: Service, redis_client: redis.Redis) -> None:
    first_record_key = f"test:intervals:{uuid.uuid4()}"
    second_record_key = f"test:intervals:{uuid.uuid4()}"

    with two_workers.client() as client:
        first_ids = create_tasks(client, 3, first_record_key, limit(f"first-{uuid.uuid4()}", 1))
        second_ids = create_tasks(client, 3, second_record_key, limit(f"second-{uuid.uuid4()}", 1))
        wait_for_success(client, first_ids + second_ids)

    first_intervals = recorded_intervals(redis_client, first_record_key)
    second_intervals = recorded_intervals(redis_client, second_record_key)
    assert max_overlap(first_intervals) == 1
    assert max_overlap(second_intervals) == 1
    assert max_overlap(first_intervals + second_intervals) == 2


def test_run_route_respects_limit(two_workers: Service, redis_client: redis.Redis) -> None:
    record_key = f"test:intervals:{uuid.uuid4()}"
    body = {"seconds": 0.2, "record_key": record_key, "fasttask_concurrency_params": limit(f"run-{uuid.uuid4()}", 1)}

    with two_workers.client() as client:
        response = client.post(f"/run/{TASK}", json=body, params={"timeout": 60})

    assert response.status_code == 200, response.text
    assert response.json()["state"] == "SUCCESS"
    assert len(recorded_intervals(redis_client, record_key)) == 1


def test_slot_of_dead_holder_expires(two_workers: Service, redis_server: EmbeddedRedis, redis_client: redis.Redis) -> None:
    """A slot taken by a task whose worker died is freed after `expire` seconds."""
    concurrency = limit(f"dead-{uuid.uuid4()}", 1, countdown=0.5, expire=5)
    limiter = ConcurrencyLimiter(f"redis://127.0.0.1:{redis_server.port}/{REDIS_DB}")
    # The holder that never releases its slot, as a worker killed mid-task would leave it.
    assert limiter.acquire(TASK, ConcurrencyParams(**concurrency), "task-of-a-dead-worker")
    record_key = f"test:intervals:{uuid.uuid4()}"

    with two_workers.client() as client:
        task_ids = create_tasks(client, 1, record_key, concurrency)
        first_check = client.get(f"/check/{TASK}", params={"result_id": task_ids[0], "wait": 1})
        wait_for_success(client, task_ids)

    assert first_check.json()["state"] in {"PENDING", "RETRY"}
    assert len(recorded_intervals(redis_client, record_key)) == 1


def test_limiter_counts_slots(redis_server: EmbeddedRedis) -> None:
    limiter = ConcurrencyLimiter(f"redis://127.0.0.1:{redis_server.port}/{REDIS_DB}")
    concurrency = ConcurrencyParams(concurrency_key=f"slots-{uuid.uuid4()}", max_concurrency=2)

    assert limiter.acquire(TASK, concurrency, "a")
    assert limiter.acquire(TASK, concurrency, "b")
    assert not limiter.acquire(TASK, concurrency, "c")
    assert limiter.acquire(TASK, concurrency, "a"), "a redelivered holder must get its slot again"

    limiter.release(TASK, concurrency, "a")
    assert limiter.acquire(TASK, concurrency, "c")


def test_concurrency_field_in_every_task_schema(client: httpx.Client) -> None:
    document = client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    create_paths = [path for path in document["paths"] if path.startswith("/create/")]
    assert create_paths

    for path in create_paths + [path for path in document["paths"] if path.startswith("/run/")]:
        reference = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        properties = schemas[reference.rsplit("/", 1)[1]]["properties"]
        assert "fasttask_concurrency_params" in properties, path

    limit_schema = schemas["ConcurrencyParams"]["properties"]
    assert limit_schema["max_concurrency"]["default"] == 16
    assert limit_schema["countdown"]["default"] == 60
    assert limit_schema["expire"]["default"] == 1800


@pytest.mark.parametrize(
    "concurrency",
    [
        {"max_concurrency": 2},
        {"concurrency_key": "k", "max_concurrency": 0},
        {"concurrency_key": "k", "max_concurrency": -1},
        {"concurrency_key": "k", "countdown": -1},
        {"concurrency_key": "k", "expire": 0},
        {"concurrency_key": "k", "expire": 1e20},
        {"concurrency_key": "k", "expire": "inf"},
        {"concurrency_key": "k", "countdown": "nan"},
        {"concurrency_key": "k", "countdown": 10**9},
        {"concurrency_key": ""},
        "not an object",
    ],
)
def test_invalid_concurrency_params_are_422(client: httpx.Client, concurrency: object) -> None:
    response = client.post("/create/get_circle_area", json={"r": 1, "fasttask_concurrency_params": concurrency})

    assert response.status_code == 422, response.text
    assert "fasttask_concurrency_params" in response.text


def test_task_params_exclude_concurrency_field(client: httpx.Client) -> None:
    body = {"r": 2, "fasttask_concurrency_params": {"concurrency_key": f"circle-{uuid.uuid4()}"}}

    response = client.post("/run/get_circle_area", json=body)

    assert response.status_code == 200, response.text
    assert response.json()["state"] == "SUCCESS"
    assert response.json()["result"]["area"] == pytest.approx(12.566370614359172)
