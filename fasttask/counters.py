"""Task counters kept in Redis as tasks change state: counts per state and completions per minute.

The API counts PENDING when it queues a task and REVOKED when it revokes one. The
workers' result backend counts STARTED, RETRY, SUCCESS, FAILURE and REVOKED in the same
script that stores the state, so a client that sees a result also sees it counted. Every
change goes through one Lua function that remembers the last state counted for the task
id. So a repeated, late or out-of-order change (a redelivered task, PENDING counted after
STARTED) moves no counter twice, and a final state is never left again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import redis.asyncio as aioredis

from fasttask.constants import (
    COMPLETION_WINDOWS_MIN, COMPLETIONS_KEY, COUNTED_STATE_KEY, ID_RECORD_GRACE_S, STATE_COUNTS_KEY,
)
from fasttask.results import FINAL_STATES, TaskState

COMPLETED_STATES = (TaskState.SUCCESS.value, TaskState.FAILURE.value)

COMPLETIONS_PREFIX = COMPLETIONS_KEY.format(hour="")

# Completion hashes outlive the longest window by two hours.
COMPLETIONS_TTL_S = max(COMPLETION_WINDOWS_MIN.values()) * 60 + 7200

# A Lua function for the scripts that count a state change: the API's, below, and the result
# backend's (fasttask/result_backend.py). Arguments: counted-state key, state-counts hash, new state,
# task name, counted-state TTL, completions key prefix, completions TTL. Minutes come from the
# Redis server clock so that nodes with skewed clocks agree.
COUNT_STATE_FUNCTION = """
local function count_state(counted_key, counts_key, new, task_name, counted_ttl, completions_prefix, completions_ttl)
  local old = redis.call('GET', counted_key)
  if old == new or old == 'SUCCESS' or old == 'FAILURE' or old == 'REVOKED' then
    return 0
  end
  if new == 'PENDING' and old then
    return 0
  end
  if old then
    redis.call('HINCRBY', counts_key, old, -1)
  end
  redis.call('HINCRBY', counts_key, new, 1)
  redis.call('SET', counted_key, new, 'EX', counted_ttl)
  if new == 'SUCCESS' or new == 'FAILURE' then
    local minute = math.floor(tonumber(redis.call('TIME')[1]) / 60)
    local hour_key = completions_prefix .. math.floor(minute / 60)
    -- A new field (the first completion of a minute) renews the hash's expiry.
    if redis.call('HINCRBY', hour_key, task_name .. '|' .. new .. '|' .. minute, 1) == 1 then
      redis.call('EXPIRE', hour_key, completions_ttl)
    end
  end
  return 1
end
"""

# KEYS: counted-state key, state-counts hash. ARGV: new state, then count_arguments().
RECORD_STATE_SCRIPT = COUNT_STATE_FUNCTION + """
return count_state(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
"""


def counted_state_ttl_s(result_expires_s: int) -> int:
    """Return how long the last counted state of a task id is kept: as long as its issued id."""
    return result_expires_s + ID_RECORD_GRACE_S


def count_keys(task_id: str, task_name: str) -> list[str]:
    """Return the counted-state key and the state-counts hash of one task."""
    return [COUNTED_STATE_KEY.format(task_id=task_id), STATE_COUNTS_KEY.format(task_name=task_name)]


def count_arguments(task_name: str, counted_ttl_s: int) -> list[Any]:
    """count_state's arguments after the new state: task name, TTLs and the completions prefix."""
    return [task_name, counted_ttl_s, COMPLETIONS_PREFIX, COMPLETIONS_TTL_S]


# NOTE: PENDING and STARTED are gauges. A message removed from a queue without running
# (a purged queue) or a task whose worker died for good stays counted there.
class TaskCounters:
    """Counts state changes from the API process and reads the figures for status_info."""

    def __init__(self, client: aioredis.Redis, result_expires_s: int) -> None:
        self._client = client
        self._counted_ttl_s = counted_state_ttl_s(result_expires_s)
        self._record_script = client.register_script(RECORD_STATE_SCRIPT)

    async def record_state(self, task_id: str, task_name: str, state: str) -> None:
        keys, arguments = self._script_call(task_id, task_name, state)
        await self._record_script(keys=keys, args=arguments)

    def add_record_state(self, pipeline: aioredis.client.Pipeline, task_id: str, task_name: str, state: str) -> None:
        """Add the count to a pipeline by the script's digest, without loading the script.

        When the server does not have the script, its reply is NoScriptError, and record_state
        loads the script and counts.
        """
        keys, arguments = self._script_call(task_id, task_name, state)
        pipeline.evalsha(self._record_script.sha, len(keys), *keys, *arguments)

    def _script_call(self, task_id: str, task_name: str, state: str) -> tuple[list[str], list[Any]]:
        return count_keys(task_id, task_name), [state, *count_arguments(task_name, self._counted_ttl_s)]

    async def read_task_info(self, task_names: Iterable[str]) -> dict[str, Any]:
        """Return counts by state and completion windows per task and in total."""
        names = sorted(task_names)
        server_seconds, _ = await self._client.time()
        now_minute = int(server_seconds) // 60

        async with self._client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(STATE_COUNTS_KEY.format(task_name=name))
            for hour in _hours_covering(now_minute):
                pipe.hgetall(COMPLETIONS_KEY.format(hour=hour))
            replies = await pipe.execute()

        state_counts = {name: _decode_counts(reply) for name, reply in zip(names, replies[: len(names)])}
        completions = _count_completions(replies[len(names):], now_minute)
        tasks = {name: build_task_figures(state_counts[name], completions.get(name, {})) for name in names}
        total = build_task_figures(_sum_counts(state_counts.values()), _sum_windows(completions.values()))
        return {"tasks": tasks, "total": total, "window_note": WINDOW_NOTE}


WINDOW_NOTE = (
    "completions are counted per whole minute: a window of N minutes holds the current minute "
    "and the N-1 before it; rates are completions divided by the window length in seconds"
)


def _hours_covering(now_minute: int) -> range:
    longest_min = max(COMPLETION_WINDOWS_MIN.values())
    return range((now_minute - longest_min + 1) // 60, now_minute // 60 + 1)


def _decode_counts(reply: dict) -> dict[str, int]:
    return {_text(state): int(count) for state, count in reply.items()}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


WindowCounts = dict[str, dict[str, int]]


def _count_completions(hour_replies: list[dict], now_minute: int) -> dict[str, WindowCounts]:
    """Add up per-minute completions into windows: task -> window -> state -> count."""
    per_task: dict[str, WindowCounts] = {}
    for reply in hour_replies:
        for raw_field, raw_count in reply.items():
            task_name, state, minute = _text(raw_field).split("|")
            age_min = now_minute - int(minute)
            windows = per_task.setdefault(task_name, _empty_windows())
            for window, length_min in COMPLETION_WINDOWS_MIN.items():
                if 0 <= age_min < length_min:
                    windows[window][state] += int(raw_count)
    return per_task


def _empty_windows() -> WindowCounts:
    return {window: {state: 0 for state in COMPLETED_STATES} for window in COMPLETION_WINDOWS_MIN}


def _sum_counts(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for per_state in counts:
        for state, count in per_state.items():
            total[state] = total.get(state, 0) + count
    return total


def _sum_windows(all_windows: Iterable[WindowCounts]) -> WindowCounts:
    total = _empty_windows()
    for windows in all_windows:
        for window, per_state in windows.items():
            for state, count in per_state.items():
                total[window][state] += count
    return total


@dataclass(frozen=True)
class WindowFigures:
    success: int
    failure: int
    length_s: int

    def as_dict(self) -> dict[str, Any]:
        completed = self.success + self.failure
        return {
            "success": self.success,
            "failure": self.failure,
            "completed": completed,
            "success_per_s": self.success / self.length_s,
            "failure_per_s": self.failure / self.length_s,
            "completed_per_s": completed / self.length_s,
        }


def build_task_figures(state_counts: dict[str, int], windows: WindowCounts) -> dict[str, Any]:
    """Shape one task's figures: every state with a count, and every completion window."""
    windows = windows or _empty_windows()
    counts = {state.value: max(0, state_counts.get(state.value, 0)) for state in TaskState}
    completed = {}
    for window, length_min in COMPLETION_WINDOWS_MIN.items():
        per_state = windows[window]
        figures = WindowFigures(per_state[TaskState.SUCCESS.value], per_state[TaskState.FAILURE.value], length_min * 60)
        completed[window] = figures.as_dict()
    return {"states": counts, "finished": sum(counts[state] for state in FINAL_STATES), "completed": completed}

