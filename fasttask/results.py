"""Async lookup of task states in the Redis result backend, and waiting for completion."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import Enum
from typing import Any, AsyncIterator, Awaitable, Callable, Optional

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from fasttask.constants import ID_RECORD_GRACE_S, ISSUED_TASK_KEY, RESULT_FALLBACK_POLL_S, RESULT_KEY

logger = logging.getLogger("fasttask.results")


class TaskState(str, Enum):
    PENDING = "PENDING"
    STARTED = "STARTED"
    RETRY = "RETRY"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    REVOKED = "REVOKED"


FINAL_STATES = {TaskState.SUCCESS.value, TaskState.FAILURE.value, TaskState.REVOKED.value}


@dataclass(frozen=True)
class TaskStatus:
    task_id: str
    state: str
    result: Any
    result_type: str

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    def as_response(self) -> dict[str, Any]:
        return {"id": self.task_id, "state": self.state, "result": self.result, "result_type": self.result_type}


def describe_failure(result: Any) -> str:
    """Turn Celery's stored exception ({exc_type, exc_message, ...}) into 'Type: message'."""
    if not isinstance(result, dict) or "exc_type" not in result:
        return str(result)
    message = result.get("exc_message", "")
    if isinstance(message, (list, tuple)):
        message = ", ".join(str(part) for part in message)
    if result["exc_type"] == "TimeLimitExceeded":
        # Celery stores the hard limit, in seconds, as the only argument when it kills the process.
        return f"TimeLimitExceeded: the task ran past TIME_LIMIT of {message} s and its process was killed"
    return f"{result['exc_type']}: {message}" if message else str(result["exc_type"])


def status_from_meta(task_id: str, raw_meta: Optional[bytes]) -> TaskStatus:
    """Build the public status of a task from the JSON that Celery stored for it."""
    if raw_meta is None:
        return TaskStatus(task_id, TaskState.PENDING.value, "", "text")

    meta = json.loads(raw_meta)
    state = meta.get("status", TaskState.PENDING.value)
    result = meta.get("result")

    if state == TaskState.SUCCESS.value:
        return TaskStatus(task_id, state, result, "json")
    if state == TaskState.FAILURE.value:
        return TaskStatus(task_id, state, describe_failure(result), "text")
    if state == TaskState.REVOKED.value:
        return TaskStatus(task_id, state, "the task was revoked", "text")
    return TaskStatus(task_id, state, "", "text")


class CompletionListener:
    """One pub/sub connection per process that wakes the requests waiting on a task's result.

    Celery's Redis backend publishes every stored state on the result key's channel, so a
    waiter subscribes before it reads the key and sleeps until a message or its fallback
    poll interval, whichever comes first.
    """

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._pubsub: Optional[aioredis.client.PubSub] = None
        self._events: dict[str, asyncio.Event] = {}
        # The data of the last message on each channel: the same JSON that Celery stored.
        self._last_messages: dict[str, bytes] = {}
        self._waiter_counts: dict[str, int] = {}
        self._reader: Optional[asyncio.Task] = None
        self._lock = asyncio.Lock()
        # Set by each subscribe, so the reader sleeps while there is nothing to read, not on a timer.
        self._channel_added = asyncio.Event()

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except (asyncio.CancelledError, Exception):
                pass
        if self._pubsub is not None:
            await self._pubsub.aclose()

    def current_event(self, channel: str) -> asyncio.Event:
        return self._events[channel]

    def last_message(self, channel: str) -> Optional[bytes]:
        return self._last_messages.get(channel)

    async def subscribe(self, channel: str) -> None:
        async with self._lock:
            count = self._waiter_counts.get(channel, 0)
            self._waiter_counts[channel] = count + 1
            if count:
                return
            self._events[channel] = asyncio.Event()
            try:
                await self._ensure_pubsub()
                await self._pubsub.subscribe(channel)
                self._channel_added.set()
            except RedisError:
                # Waiting still works through the fallback poll.
                logger.warning("subscribing to %s failed; waiting by polling", channel)

    async def unsubscribe(self, channel: str) -> None:
        async with self._lock:
            count = self._waiter_counts.get(channel, 0) - 1
            if count > 0:
                self._waiter_counts[channel] = count
                return
            self._waiter_counts.pop(channel, None)
            self._events.pop(channel, None)
            self._last_messages.pop(channel, None)
            if self._pubsub is not None:
                try:
                    await self._pubsub.unsubscribe(channel)
                except RedisError:
                    logger.warning("unsubscribing from %s failed", channel)

    async def _ensure_pubsub(self) -> None:
        if self._pubsub is None:
            self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read_messages(), name="fasttask-completion-listener")

    async def _read_messages(self) -> None:
        while True:
            try:
                if not self._pubsub.subscribed:
                    self._channel_added.clear()
                    await self._channel_added.wait()
                    continue
                message = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("completion listener lost its Redis connection; retrying in 1 s", exc_info=True)
                await asyncio.sleep(1.0)
                continue
            if message is None:
                continue
            channel = message["channel"]
            if isinstance(channel, bytes):
                channel = channel.decode()
            event = self._events.get(channel)
            if event is not None:
                self._last_messages[channel] = message["data"]
                self._events[channel] = asyncio.Event()
                event.set()


class ResultStore:
    """Reads task states and the ids this service issued; one instance per API process."""

    def __init__(self, client: aioredis.Redis, result_expires_s: int) -> None:
        self._client = client
        self._result_expires_s = result_expires_s
        self.listener = CompletionListener(client)

    async def close(self) -> None:
        await self.listener.close()

    @property
    def issued_expires_s(self) -> int:
        # Kept a little longer than the result so a finished task is never reported unknown.
        return self._result_expires_s + ID_RECORD_GRACE_S

    async def record_issued(self, task_id: str, task_name: str) -> None:
        await self._client.set(ISSUED_TASK_KEY.format(task_id=task_id), task_name, ex=self.issued_expires_s)

    async def issued_task_name(self, task_id: str) -> Optional[str]:
        value = await self._client.get(ISSUED_TASK_KEY.format(task_id=task_id))
        return value.decode() if value is not None else None

    async def lookup(self, task_id: str) -> tuple[Optional[str], TaskStatus]:
        """Return the task name the id was issued for (None if never) and its status, in one round trip."""
        issued_name, raw_meta = await self._client.mget(ISSUED_TASK_KEY.format(task_id=task_id), RESULT_KEY.format(task_id=task_id))
        task_name = issued_name.decode() if issued_name is not None else None
        return task_name, status_from_meta(task_id, raw_meta)

    async def get_status(self, task_id: str) -> TaskStatus:
        raw_meta = await self._client.get(RESULT_KEY.format(task_id=task_id))
        return status_from_meta(task_id, raw_meta)

    async def wait_for_final(self, task_id: str, timeout_s: float) -> TaskStatus:
        """Return the status once it is final, or the current status when timeout_s passes."""
        deadline = time.monotonic() + timeout_s
        async with self._subscription(task_id) as channel:
            status = await self.get_status(task_id)
            return await self._wait(channel, status, deadline)

    async def queue_and_wait(self, task_id: str, queue_task: Callable[[], Awaitable[Any]], timeout_s: float) -> TaskStatus:
        """Subscribe to a new task's result channel, queue it with queue_task, and wait as wait_for_final does.

        The channel is subscribed before the task exists, so no state change can be missed and
        the task's status needs no first read: it is PENDING.
        """
        deadline = time.monotonic() + timeout_s
        async with self._subscription(task_id) as channel:
            await queue_task()
            return await self._wait(channel, TaskStatus(task_id, TaskState.PENDING.value, "", "text"), deadline)

    @asynccontextmanager
    async def _subscription(self, task_id: str) -> AsyncIterator[str]:
        channel = RESULT_KEY.format(task_id=task_id)
        await self.listener.subscribe(channel)
        try:
            yield channel
        finally:
            await self.listener.unsubscribe(channel)

    async def _wait(self, channel: str, status: TaskStatus, deadline: float) -> TaskStatus:
        task_id = status.task_id
        event = self.listener.current_event(channel)
        while True:
            remaining = deadline - time.monotonic()
            if status.is_final or remaining <= 0:
                return status

            try:
                await asyncio.wait_for(event.wait(), min(remaining, RESULT_FALLBACK_POLL_S))
                published = self.listener.last_message(channel)
            except asyncio.TimeoutError:
                published = None
            event = self.listener.current_event(channel)

            # Celery publishes the stored JSON itself, so a woken waiter needs no GET;
            # after a fallback timeout the key is read in case a message was missed.
            if published is not None:
                status = status_from_meta(task_id, published)
            else:
                status = await self.get_status(task_id)
