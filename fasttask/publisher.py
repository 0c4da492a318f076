"""Queue tasks from the API process without blocking its event loop."""

from __future__ import annotations

import base64
import json
import logging
import uuid
from typing import Any, Optional

import anyio
import redis.asyncio as aioredis
from celery import Celery
from redis.exceptions import NoScriptError, RedisError

from fasttask.concurrency import ConcurrencyParams
from fasttask.constants import CONCURRENCY_PARAMS_FIELD, ISSUED_TASK_KEY
from fasttask.counters import TaskCounters
from fasttask.registry import TaskSpec
from fasttask.results import ResultStore, TaskState
from fasttask.settings import Settings

logger = logging.getLogger("fasttask.publisher")

# Publishing through kombu is a short blocking call; this many may run in threads at once.
MAX_PUBLISHING_THREADS = 32

# kombu's Redis transport (kombu 5.x) sends with delivery_mode 2 (persistent), priority 0
# and base64 bodies. A message for the default exchange ("") goes to the list named after
# the routing key, which is the queue name.
PERSISTENT_DELIVERY_MODE = 2
DEFAULT_PRIORITY = 0


def new_task_id() -> str:
    return str(uuid.uuid4())


def can_publish_directly(settings: Settings) -> bool:
    """True when the broker is the Redis server and database that the result client talks to."""
    broker = settings.broker
    return settings.broker_is_redis and broker == settings.result_backend


def encode_task_message(celery_app: Celery, spec: TaskSpec, task_id: str, params: dict[str, Any]) -> bytes:
    """Build the JSON envelope that kombu's Redis transport pushes onto a queue for send_task.

    Celery builds the task message itself (protocol 2 headers and body), so a worker reads it
    exactly as one sent by send_task. Only kombu's transport envelope is assembled here.
    """
    # send_task leaves ignore_result unset (None), so the worker applies the task's own setting.
    message = celery_app.amqp.create_task_message(
        task_id, spec.name, (), params, reply_to=celery_app.thread_oid, ignore_result=None
    )
    body = json.dumps(message.body).encode("utf-8")
    properties = {
        **message.properties,
        "delivery_mode": PERSISTENT_DELIVERY_MODE,
        "delivery_info": {"exchange": "", "routing_key": spec.queue},
        "priority": DEFAULT_PRIORITY,
        "body_encoding": "base64",
        "delivery_tag": str(uuid.uuid4()),
    }
    envelope = {
        "body": base64.b64encode(body).decode("ascii"),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": message.headers,
        "properties": properties,
    }
    return json.dumps(envelope).encode("utf-8")


class TaskPublisher:
    """Record a new task id as issued by this service, then send the task to its queue.

    With a Redis broker that is also the result backend, both steps and the PENDING count are
    one pipelined round trip on the API's async Redis pool. Any other broker goes through
    Celery's send_task in a worker thread.
    NOTE: the direct path fires no before_task_publish or after_task_publish signal.
    """

    def __init__(
        self,
        celery_app: Celery,
        store: ResultStore,
        counters: TaskCounters,
        client: aioredis.Redis,
        publish_directly: bool,
    ) -> None:
        self._celery_app = celery_app
        self._store = store
        self._counters = counters
        self._client = client
        self._publish_directly = publish_directly
        self._limiter = anyio.CapacityLimiter(MAX_PUBLISHING_THREADS)

    async def publish(
        self, spec: TaskSpec, params: dict[str, Any], limit: Optional[ConcurrencyParams] = None,
        task_id: Optional[str] = None,
    ) -> str:
        """Queue the task under task_id (a new id when None) and return the id."""
        task_id = task_id or new_task_id()
        if limit is not None:
            # The worker removes this keyword before it validates the task's Params.
            params = {**params, CONCURRENCY_PARAMS_FIELD: limit.model_dump(mode="json")}

        if self._publish_directly:
            await self._push(spec, task_id, params)
        else:
            await self._store.record_issued(task_id, spec.name)
            await anyio.to_thread.run_sync(self._send, spec, task_id, params, limiter=self._limiter)
            await self._count_pending(spec, task_id)
        logger.info("task %s %s queued", spec.name, task_id)
        return task_id

    async def _push(self, spec: TaskSpec, task_id: str, params: dict[str, Any]) -> None:
        """Record the issued id, count PENDING and push the message, in one round trip."""
        message = encode_task_message(self._celery_app, spec, task_id, params)
        async with self._client.pipeline(transaction=False) as pipeline:
            pipeline.set(ISSUED_TASK_KEY.format(task_id=task_id), spec.name, ex=self._store.issued_expires_s)
            self._counters.add_record_state(pipeline, task_id, spec.name, TaskState.PENDING.value)
            pipeline.lpush(spec.queue, message)
            issued, counted, pushed = await pipeline.execute(raise_on_error=False)

        for reply in (issued, pushed):
            if isinstance(reply, Exception):
                raise reply
        if isinstance(counted, NoScriptError):
            # The server lost its script cache (a restart or SCRIPT FLUSH); this call loads it again.
            await self._count_pending(spec, task_id)
        elif isinstance(counted, Exception):
            logger.warning("task %s %s: cannot count state PENDING: %s", spec.name, task_id, counted)

    async def _count_pending(self, spec: TaskSpec, task_id: str) -> None:
        try:
            await self._counters.record_state(task_id, spec.name, TaskState.PENDING.value)
        except RedisError as exc:
            # The task is queued; a lost count must not turn that into an error for the caller.
            logger.warning("task %s %s: cannot count state PENDING: %s", spec.name, task_id, exc)

    def _send(self, spec: TaskSpec, task_id: str, params: dict[str, Any]) -> None:
        self._celery_app.send_task(spec.name, kwargs=params, task_id=task_id, queue=spec.queue, routing_key=spec.queue)
