"""Per-key concurrency limits: at most N tasks with the same key and task name run at once."""

from __future__ import annotations

import logging
import os
from typing import Any, Optional

import redis
from pydantic import BaseModel, ConfigDict, Field

from fasttask.constants import CONCURRENCY_KEY, CONCURRENCY_PARAMS_FIELD

logger = logging.getLogger("fasttask.concurrency")


# Upper bounds that keep the slot expiry, in milliseconds, within the integers Redis accepts
# and a retry countdown within what a caller can wait for.
MAX_CONCURRENCY = 1_000_000
MAX_COUNTDOWN_S = 86_400
MAX_EXPIRE_S = 30 * 86_400


class ConcurrencyParams(BaseModel):
    """Limit on how many tasks with the same concurrency_key and task name run at once."""

    model_config = ConfigDict(allow_inf_nan=False)

    concurrency_key: str = Field(min_length=1, max_length=200, description="tasks sharing this key share the limit")
    max_concurrency: int = Field(16, gt=0, le=MAX_CONCURRENCY, description="maximum number of such tasks running at once")
    countdown: float = Field(
        60, ge=0, le=MAX_COUNTDOWN_S, description="seconds a task waits before trying again when the limit is reached"
    )
    expire: float = Field(
        1800, gt=0, le=MAX_EXPIRE_S, description="seconds after which a running task's slot is freed even if its worker died"
    )


# Runs atomically in Redis. KEYS[1] is a sorted set of slot holders (task ids) scored by the
# millisecond time at which their slot expires; ARGV is task id, max_concurrency, expire in ms.
# Redis' own clock is used so that workers on machines with skewed clocks agree.
# A task id that already has a slot (a redelivered task) gets it again with a new expiry.
ACQUIRE_SCRIPT = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)

local is_holder = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not is_holder and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
    return 0
end

redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[3]), ARGV[1])
local latest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], math.floor(tonumber(latest[2])) + 1000)
return 1
"""


def pop_concurrency_params(kwargs: dict[str, Any]) -> Optional[ConcurrencyParams]:
    """Remove the reserved concurrency field from a task's keyword arguments and parse it."""
    raw = kwargs.pop(CONCURRENCY_PARAMS_FIELD, None)
    if raw is None:
        return None
    return ConcurrencyParams.model_validate(raw)


def slot_key(task_name: str, concurrency_key: str) -> str:
    return CONCURRENCY_KEY.format(task_name=task_name, concurrency_key=concurrency_key)


class ConcurrencyLimiter:
    """Slots of concurrency limits in Redis, with one connection pool per worker process."""

    def __init__(self, redis_url: str) -> None:
        self._redis_url = redis_url
        self._client: Optional[redis.Redis] = None
        self._client_pid: Optional[int] = None
        self._acquire_script: Any = None

    def _connection(self) -> redis.Redis:
        # Prefork workers fork after the app is built: each child opens its own connections.
        if self._client is None or self._client_pid != os.getpid():
            self._client = redis.Redis.from_url(self._redis_url, socket_connect_timeout=3, socket_timeout=10)
            self._client_pid = os.getpid()
            self._acquire_script = self._client.register_script(ACQUIRE_SCRIPT)
        return self._client

    def acquire(self, task_name: str, limit: ConcurrencyParams, task_id: str) -> bool:
        """Take a slot for task_id. Return False when max_concurrency tasks already have one."""
        self._connection()
        expire_ms = int(limit.expire * 1000)
        key = slot_key(task_name, limit.concurrency_key)
        acquired = self._acquire_script(keys=[key], args=[task_id, limit.max_concurrency, expire_ms])
        return bool(acquired)

    def release(self, task_name: str, limit: ConcurrencyParams, task_id: str) -> None:
        """Free the slot of task_id. A failure is only logged because the slot expires anyway."""
        try:
            self._connection().zrem(slot_key(task_name, limit.concurrency_key), task_id)
        except redis.RedisError as exc:
            logger.warning(
                "releasing the concurrency slot of task %s %s failed (%s), so it stays taken until it expires after %g s",
                task_name, task_id, exc, limit.expire,
            )
