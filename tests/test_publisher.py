"""The publisher's direct Redis path against send_task and a real worker, and its thread fallback."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Iterator

import pytest
import redis
import redis.asyncio as aioredis

from fasttask.constants import ISSUED_TASK_KEY
from fasttask.counters import TaskCounters
from fasttask.embedded import EmbeddedRedis
from fasttask.publisher import TaskPublisher, can_publish_directly, encode_task_message
from fasttask.registry import load_tasks
from fasttask.results import ResultStore
from fasttask.settings import Settings
from fasttask.worker import create_celery_app
from tests.conftest import TEST_TASKS, Service, build_service

# Fields that differ between any two messages: ids, the delivery tag and the sending process.
PER_MESSAGE_FIELDS = {"id", "root_id", "correlation_id", "delivery_tag", "origin", "reply_to"}


def settings_for(redis_port: int, db: int = 0) -> Settings:
    return Settings(master_host="127.0.0.1", task_queue_port=redis_port, task_queue_db=db, tasks_dir=TEST_TASKS)


def without_per_message_fields(envelope: dict) -> dict:
    cleaned = {key: value for key, value in envelope.items() if key not in ("headers", "properties")}
    cleaned["headers"] = {key: value for key, value in envelope["headers"].items() if key not in PER_MESSAGE_FIELDS}
    cleaned["properties"] = {
        key: value for key, value in envelope["properties"].items() if key not in PER_MESSAGE_FIELDS
    }
    return cleaned


def test_direct_path_chosen_only_for_same_redis(redis_server: EmbeddedRedis) -> None:
    same = settings_for(redis_server.port)
    amqp = Settings(broker_url="amqp://guest@127.0.0.1:5672//", result_backend_url=same.result_backend)
    other_db = Settings(broker_url=same.broker, result_backend_url=settings_for(redis_server.port, db=1).result_backend)

    assert can_publish_directly(same)
    assert not can_publish_directly(amqp)
    assert not can_publish_directly(other_db)


def test_encoded_message_matches_send_task(redis_server: EmbeddedRedis) -> None:
    settings = settings_for(redis_server.port, db=3)
    specs = load_tasks(TEST_TASKS)
    celery_app = create_celery_app(settings, specs, register=False)
    client = redis.Redis(port=redis_server.port, db=3)
    queue = specs["sleep_for"].queue
    params = {"seconds": 1.5, "名字": "张三"}
    try:
        client.delete(queue)
        celery_app.send_task("sleep_for", kwargs=params, task_id=str(uuid.uuid4()), queue=queue, routing_key=queue)
        sent_by_celery = json.loads(client.rpop(queue))
        encoded = json.loads(encode_task_message(celery_app, specs["sleep_for"], "direct-id", params))
    finally:
        client.close()
        celery_app.close()

    assert without_per_message_fields(encoded) == without_per_message_fields(sent_by_celery)
    assert encoded["headers"]["id"] == "direct-id"
    assert encoded["headers"]["root_id"] == "direct-id"
    assert encoded["properties"]["correlation_id"] == "direct-id"


async def publish_directly(service: Service, params: dict) -> str:
    settings = settings_for(service.redis_port)
    specs = load_tasks(service.tasks_dir)
    celery_app = create_celery_app(settings, specs, register=False)
    client = aioredis.Redis(port=service.redis_port)
    store = ResultStore(client, settings.result_expires)
    try:
        counters = TaskCounters(client, store.issued_expires_s)
        publisher = TaskPublisher(celery_app, store, counters, client, publish_directly=True)
        task_id = await publisher.publish(specs["sleep_for"], params)
        assert await client.get(ISSUED_TASK_KEY.format(task_id=task_id)) == b"sleep_for"
        status = await store.wait_for_final(task_id, timeout_s=60)
    finally:
        await store.close()
        await client.aclose()
        celery_app.close()
    assert status.state == "SUCCESS", status
    assert status.result == {"slept": params["seconds"]}
    return task_id


def test_worker_runs_directly_published_task(service: Service, client) -> None:
    task_id = asyncio.run(publish_directly(service, {"seconds": 0.1}))

    checked = client.get("/check/sleep_for", params={"result_id": task_id})

    assert checked.status_code == 200
    assert checked.json()["result"] == {"slept": 0.1}


@pytest.fixture(scope="module")
def thread_published_service(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A service whose results live in another database than its queues, so it sends through send_task."""
    root: Path = tmp_path_factory.mktemp("thread-published")
    broker = f"redis://127.0.0.1:{redis_server.port}/4"
    results = f"redis://127.0.0.1:{redis_server.port}/5"
    running = build_service(root, redis_server.port, BROKER_URL=broker, RESULT_BACKEND_URL=results, RUN_TIMEOUT="30")
    try:
        running.start_worker()
        running.start_api()
        yield running
    finally:
        running.stop()


def test_send_task_fallback_runs_task(thread_published_service: Service) -> None:
    with thread_published_service.client() as http_client:
        response = http_client.post("/run/sleep_for", json={"seconds": 0.1})

    assert response.status_code == 200
    assert response.json()["state"] == "SUCCESS"
    assert response.json()["result"] == {"slept": 0.1}
    queue_keys = redis.Redis(port=thread_published_service.redis_port, db=5).keys("sleep_for*")
    assert queue_keys == [], "the fallback must queue on the broker's database, not the result backend's"
