"""The worker's Celery app: one result backend per process, shared by its threads."""

from __future__ import annotations

import threading
from pathlib import Path

from celery import Celery

from fasttask.embedded import EmbeddedRedis
from fasttask.result_backend import GuardedRedisBackend
from fasttask.settings import Settings
from fasttask.worker import create_celery_app


def backend_seen_by_another_thread(app: Celery) -> object:
    seen = []
    thread = threading.Thread(target=lambda: seen.append(app.backend))
    thread.start()
    thread.join()
    return seen[0]


def test_worker_threads_share_one_backend(redis_server: EmbeddedRedis) -> None:
    settings = Settings(master_host="127.0.0.1", task_queue_port=redis_server.port, tasks_dir=Path("."))
    worker_app = create_celery_app(settings, {})
    api_app = create_celery_app(settings, {}, register=False)

    assert isinstance(worker_app.backend, GuardedRedisBackend)
    assert backend_seen_by_another_thread(worker_app) is worker_app.backend
    # The API's send_task path subscribes through the backend's pub/sub consumer, which is not
    # thread-safe, so there each thread keeps its own backend.
    assert backend_seen_by_another_thread(api_app) is not api_app.backend
