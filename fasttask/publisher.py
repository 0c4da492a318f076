"""Queue tasks from the API process without blocking its event loop."""

from __future__ import annotations

import logging
import uuid
from typing import Any, Optional

import anyio
from celery import Celery
from redis.exceptions import RedisError

from fasttask.counters import TaskCounters
from fasttask.concurrency import ConcurrencyParams
from fasttask.constants import CONCURRENCY_PARAMS_FIELD
from fasttask.registry import TaskSpec
from fasttask.results import ResultStore, TaskState

logger = logging.getLogger("fasttask.publisher")

# Publishing is a short blocking call in kombu; this many may run in threads at once.
MAX_PUBLISHING_THREADS = 32


class TaskPublisher:
    """Record a new task id as issued by this service, then send the task to its queue."""

    def __init__(self, celery_app: Celery, store: ResultStore, counters: TaskCounters) -> None:
        self._celery_app = celery_app
        self._store = store
        self._counters = counters
        self._limiter = anyio.CapacityLimiter(MAX_PUBLISHING_THREADS)

    async def publish(self, spec: TaskSpec, params: dict[str, Any], limit: Optional[ConcurrencyParams] = None) -> str:
        task_id = str(uuid.uuid4())
        if limit is not None:
            # The worker removes this keyword before it validates the task's Params.
            params = {**params, CONCURRENCY_PARAMS_FIELD: limit.model_dump(mode="json")}
        await self._store.record_issued(task_id, spec.name)
        await anyio.to_thread.run_sync(self._send, spec, task_id, params, limiter=self._limiter)
        try:
            await self._counters.record_state(task_id, spec.name, TaskState.PENDING.value)
        except RedisError as exc:
            # The task is queued; a lost count must not turn that into an error for the caller.
            logger.warning("task %s %s: cannot count state PENDING: %s", spec.name, task_id, exc)
        logger.info("task %s %s queued", spec.name, task_id)
        return task_id

    def _send(self, spec: TaskSpec, task_id: str, params: dict[str, Any]) -> None:
        self._celery_app.send_task(spec.name, kwargs=params, task_id=task_id, queue=spec.queue, routing_key=spec.queue)
