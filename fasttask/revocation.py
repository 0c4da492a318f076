"""Revoked task ids kept in Redis, and a result backend that never overwrites REVOKED.

Celery keeps revoked ids only in each worker's memory, so a task revoked while no
worker is online, or before a restart, would still run. /revoke therefore stores a
marker per id (read by the task wrapper before the function runs) and writes REVOKED
into the result backend at once. The guarded backend below keeps that REVOKED result
even when a worker later tries to store STARTED or SUCCESS for the same id.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from enum import Enum
from functools import cached_property
from typing import Any, Optional, Union

import redis.asyncio as aioredis
from celery.backends.redis import RedisBackend
from redis.commands.core import Script

from fasttask.constants import RESULT_KEY, REVOKED_TASK_KEY
from fasttask.results import TaskState

# KEYS: result key. ARGV: value, expiry in seconds (0 for none).
GUARDED_SET_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if current then
  local ok, meta = pcall(cjson.decode, current)
  if ok and type(meta) == 'table' and meta['status'] == 'REVOKED' then
    return 0
  end
end
if tonumber(ARGV[2]) > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 1
"""

# KEYS: result key. ARGV: REVOKED meta, expiry in seconds. Returns the final state the
# task already had, or 'REVOKED_NOW' when this call stored REVOKED.
STORE_REVOKED_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if current then
  local ok, meta = pcall(cjson.decode, current)
  if ok and type(meta) == 'table' then
    local state = meta['status']
    if state == 'SUCCESS' or state == 'FAILURE' or state == 'REVOKED' then
      return state
    end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 'REVOKED_NOW'
"""


def _seconds(expires: Union[None, int, float, timedelta]) -> int:
    if expires is None:
        return 0
    if isinstance(expires, timedelta):
        return int(expires.total_seconds())
    return int(expires)


class GuardedRedisBackend(RedisBackend):
    """Celery's Redis result backend, except that a stored REVOKED result is never replaced."""

    def _set(self, key: Any, value: Any, expires: Union[None, int, float, timedelta] = None) -> None:
        if expires is None:
            expires = self.expires
        # EVALSHA sends the script's digest instead of its text on every result write.
        self._guarded_set(keys=[key], args=[value, _seconds(expires)], client=self.client)

    @cached_property
    def _guarded_set(self) -> Script:
        return self.client.register_script(GUARDED_SET_SCRIPT)


def guarded_backend_url(result_backend_url: str) -> str:
    """Prefix a redis:// or rediss:// URL so Celery loads GuardedRedisBackend for it."""
    if result_backend_url.startswith(("redis://", "rediss://")):
        return f"{GuardedRedisBackend.__module__}:{GuardedRedisBackend.__name__}+{result_backend_url}"
    return result_backend_url


def revoked_meta(task_id: str) -> str:
    """Build the JSON Celery stores for a revoked task, so Celery clients read it as REVOKED too."""
    return json.dumps({
        "status": TaskState.REVOKED.value,
        "result": {"exc_type": "TaskRevokedError", "exc_message": ["revoked"], "exc_module": "celery.exceptions"},
        "traceback": None,
        "children": [],
        "date_done": datetime.now(timezone.utc).isoformat(),
        "task_id": task_id,
    })


class RevokeOutcome(str, Enum):
    REVOKED_NOW = "REVOKED_NOW"
    ALREADY_REVOKED = "REVOKED"
    ALREADY_SUCCEEDED = "SUCCESS"
    ALREADY_FAILED = "FAILURE"


class RevocationStore:
    """Marks ids as revoked for the workers and stores REVOKED results, from the API process."""

    def __init__(self, client: aioredis.Redis, result_expires_s: int) -> None:
        self._client = client
        self._result_expires_s = result_expires_s
        self._store_revoked = client.register_script(STORE_REVOKED_SCRIPT)

    async def revoke(self, task_id: str) -> RevokeOutcome:
        """Mark the id revoked and store REVOKED, unless the task already has a final state."""
        marker = REVOKED_TASK_KEY.format(task_id=task_id)
        # Kept as long as the issued id, so a message delivered late still finds it.
        await self._client.set(marker, "1", ex=self._result_expires_s + 3600)

        reply = await self._store_revoked(keys=[RESULT_KEY.format(task_id=task_id)], args=[revoked_meta(task_id), self._result_expires_s])
        outcome = RevokeOutcome(reply.decode() if isinstance(reply, bytes) else reply)
        if outcome in (RevokeOutcome.ALREADY_SUCCEEDED, RevokeOutcome.ALREADY_FAILED):
            await self._client.delete(marker)
        return outcome


def is_revoked(client: Any, task_id: Optional[str]) -> bool:
    """Check the marker from a worker process (synchronous Redis client)."""
    if not task_id:
        return False
    return bool(client.exists(REVOKED_TASK_KEY.format(task_id=task_id)))
