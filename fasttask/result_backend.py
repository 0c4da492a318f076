"""The workers' result backend: Celery's Redis backend with FastTask's checks and counters.

Each store is one script run that keeps a stored SUCCESS (as Celery does) or REVOKED (set
by /revoke) and counts the state for /status_info. As a task starts, one more script run
checks the task's revoke marker and stores STARTED. Celery's own backend takes two round
trips per store: it reads the current result first, then writes.
"""

from __future__ import annotations

import os
from datetime import timedelta
from functools import cached_property
from typing import Any, Optional, Union

from celery import states
from celery.backends.redis import RedisBackend
from celery.exceptions import BackendStoreError
from kombu.utils.encoding import bytes_to_str
from redis.commands.core import Script

from fasttask.constants import REVOKED_TASK_KEY
from fasttask.counters import COUNT_STATE_FUNCTION, count_arguments, count_keys, counted_state_ttl_s
from fasttask.results import TaskState

# Lua function: the status of the result stored under a key, or nil.
STORED_STATUS_FUNCTION = """
local function stored_status(key)
  local current = redis.call('GET', key)
  if not current then
    return nil
  end
  local ok, meta = pcall(cjson.decode, current)
  if ok and type(meta) == 'table' then
    return meta['status']
  end
  return nil
end
"""

# Lua function: store a result and publish it, unless the stored one's status is SUCCESS (kept
# as Celery keeps it, so a task delivered twice does not overwrite its result) or REVOKED.
STORE_UNLESS_KEPT_FUNCTION = STORED_STATUS_FUNCTION + """
local function store_unless_kept(key, value, expires, status)
  if status == 'SUCCESS' or status == 'REVOKED' then
    return false
  end
  if tonumber(expires) > 0 then
    redis.call('SET', key, value, 'EX', expires)
  else
    redis.call('SET', key, value)
  end
  redis.call('PUBLISH', key, value)
  return true
end
"""

# KEYS: result key, counted-state key, state-counts hash. ARGV: value, expiry in seconds
# (0 for none), state, then count_arguments(), with an empty task name to count nothing.
STORE_RESULT_SCRIPT = COUNT_STATE_FUNCTION + STORE_UNLESS_KEPT_FUNCTION + """
if not store_unless_kept(KEYS[1], ARGV[1], ARGV[2], stored_status(KEYS[1])) then
  return 0
end
if ARGV[4] ~= '' then
  count_state(KEYS[2], KEYS[3], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7])
end
return 1
"""

# KEYS: revoke marker, result key, counted-state key, state-counts hash. ARGV: STARTED value,
# expiry in seconds, then count_arguments(). Returns 0 when the task was revoked and must not run.
START_TASK_SCRIPT = COUNT_STATE_FUNCTION + STORE_UNLESS_KEPT_FUNCTION + """
local status = stored_status(KEYS[2])
if status == 'REVOKED' or redis.call('EXISTS', KEYS[1]) == 1 then
  count_state(KEYS[3], KEYS[4], 'REVOKED', ARGV[3], ARGV[4], ARGV[5], ARGV[6])
  return 0
end
if store_unless_kept(KEYS[2], ARGV[1], ARGV[2], status) then
  count_state(KEYS[3], KEYS[4], 'STARTED', ARGV[3], ARGV[4], ARGV[5], ARGV[6])
end
return 1
"""

# States the workers' backend counts; any other state (a custom one) is stored uncounted.
COUNTED_STATES = frozenset(state.value for state in TaskState) - {TaskState.PENDING.value}


def _seconds(expires: Union[None, int, float, timedelta]) -> int:
    if expires is None:
        return 0
    if isinstance(expires, timedelta):
        return int(expires.total_seconds())
    return int(expires)


class GuardedRedisBackend(RedisBackend):
    """Celery's Redis result backend that checks revoke markers, keeps a stored SUCCESS or REVOKED,
    and counts each state it stores."""

    def start_task(self, task_id: str, task_name: str, request: Any) -> bool:
        """Store and count STARTED, or return False (counting REVOKED) when the task was revoked."""
        started = {"pid": os.getpid(), "hostname": getattr(request, "hostname", None)}
        value = self._encoded_meta(task_id, started, states.STARTED, None, request)
        keys = [REVOKED_TASK_KEY.format(task_id=task_id), self.get_key_for_task(task_id), *count_keys(task_id, task_name)]
        arguments = [value, _seconds(self.expires), *count_arguments(task_name, self._counted_ttl_s)]
        return bool(self.ensure(self._run_script, (self._start_task_script, keys, arguments)))

    def _store_result(
        self, task_id: str, result: Any, state: str, traceback: Optional[str] = None, request: Any = None, **_: Any,
    ) -> Any:
        value = self._encoded_meta(task_id, result, state, traceback, request)
        if isinstance(value, str) and len(value) > self._MAX_STR_VALUE_SIZE:
            raise BackendStoreError(
                f"result too large for Redis: {len(value)} characters, the limit is {self._MAX_STR_VALUE_SIZE}",
                state=state, task_id=task_id,
            )

        expires = self.failure_expires if state == states.FAILURE else self.expires
        # An empty task name makes the script store the state without counting it.
        task_name = (getattr(request, "task", None) or "") if state in COUNTED_STATES else ""
        keys = [self.get_key_for_task(task_id), *count_keys(task_id, task_name)]
        arguments = [value, _seconds(expires), state, *count_arguments(task_name, self._counted_ttl_s)]
        self.ensure(self._run_script, (self._store_result_script, keys, arguments))
        return result

    def _encoded_meta(self, task_id: str, result: Any, state: str, traceback: Optional[str], request: Any) -> Any:
        meta = self._get_result_meta(result=result, state=state, traceback=traceback, request=request)
        meta["task_id"] = bytes_to_str(task_id)
        return self.encode(meta)

    def _run_script(self, script: Script, keys: list[Any], arguments: list[Any]) -> Any:
        # EVALSHA sends the script's digest instead of its text on every call.
        return script(keys=keys, args=arguments, client=self.client)

    @cached_property
    def _counted_ttl_s(self) -> int:
        return counted_state_ttl_s(_seconds(self.expires))

    @cached_property
    def _store_result_script(self) -> Script:
        return self.client.register_script(STORE_RESULT_SCRIPT)

    @cached_property
    def _start_task_script(self) -> Script:
        return self.client.register_script(START_TASK_SCRIPT)


def guarded_backend_url(result_backend_url: str) -> str:
    """Prefix a redis:// or rediss:// URL (Settings allows no other) so Celery loads GuardedRedisBackend for it."""
    return f"{GuardedRedisBackend.__module__}:{GuardedRedisBackend.__name__}+{result_backend_url}"
