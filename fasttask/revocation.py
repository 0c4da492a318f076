"""Revoked task ids kept in Redis, so a revoked task never runs.

Celery keeps revoked ids only in each worker's memory, so a task revoked while no
worker is online, or before a restart, would still run. /revoke therefore stores a
marker per id, which the workers' result backend checks as a task starts
(fasttask/result_backend.py), and writes REVOKED into the result at once.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from enum import Enum

import redis.asyncio as aioredis

from fasttask.constants import ID_RECORD_GRACE_S, RESULT_KEY, REVOKED_TASK_KEY
from fasttask.result_backend import STORED_STATUS_FUNCTION
from fasttask.results import TaskState

# KEYS: result key. ARGV: REVOKED meta, expiry in seconds. Returns the final state the
# task already had, or 'REVOKED_NOW' when this call stored REVOKED.
STORE_REVOKED_SCRIPT = STORED_STATUS_FUNCTION + """
local status = stored_status(KEYS[1])
if status == 'SUCCESS' or status == 'FAILURE' or status == 'REVOKED' then
  return status
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 'REVOKED_NOW'
"""


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
        await self._client.set(marker, "1", ex=self._result_expires_s + ID_RECORD_GRACE_S)

        reply = await self._store_revoked(keys=[RESULT_KEY.format(task_id=task_id)], args=[revoked_meta(task_id), self._result_expires_s])
        outcome = RevokeOutcome(reply.decode() if isinstance(reply, bytes) else reply)
        if outcome in (RevokeOutcome.ALREADY_SUCCEEDED, RevokeOutcome.ALREADY_FAILED):
            await self._client.delete(marker)
        return outcome
