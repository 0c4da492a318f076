"""Task counters kept in Redis as tasks change state: counts per state and completions per minute.

The API counts PENDING when it queues a task and REVOKED when it revokes one. The
workers count STARTED, SUCCESS, FAILURE and REVOKED from Celery signals. Each change
goes through one Lua script that remembers the last state counted for the task id. So a
repeated, late or out-of-order change (a redelivered task, PENDING counted after
STARTED) moves no counter twice, and a final state is never left again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import redis
import redis.asyncio as aioredis

from fasttask.constants import COMPLETION_WINDOWS_MIN, COMPLETIONS_KEY, COUNTED_STATE_KEY, STATE_COUNTS_KEY
from fasttask.results import FINAL_STATES, TaskState

COMPLETED_STATES = (TaskState.SUCCESS.value, TaskState.FAILURE.value)

COMPLETIONS_PREFIX = COMPLETIONS_KEY.format(hour="")

# Completion hashes outlive the longest window by two hours.
COMPLETIONS_TTL_S = max(COMPLETION_WINDOWS_MIN.values()) * 60 + 7200

# KEYS: counted-state key, state-counts hash. ARGV: new state, task name, counted-state TTL,
# completions key prefix, completions TTL. Minutes come from the Redis server clock so that
# nodes with skewed clocks agree.
RECORD_STATE_SCRIPT = """
local old = redis.call('GET', KEYS[1])
local new = ARGV[1]
if old == new or old == 'SUCCESS' or old == 'FAILURE' or old == 'REVOKED' then
  return 0
end
if new == 'PENDING' and old then
  return 0
end
if old then
  redis.call('HINCRBY', KEYS[2], old, -1)
end
redis.call('HINCRBY', KEYS[2], new, 1)
redis.call('SET', KEYS[1], new, 'EX', ARGV[3])
if new == 'SUCCESS' or new == 'FAILURE' then
  local minute = math.floor(tonumber(redis.call('TIME')[1]) / 60)
  local hour_key = ARGV[4] .. math.floor(minute / 60)
  redis.call('HINCRBY', hour_key, ARGV[2] .. '|' .. new .. '|' .. minute, 1)
  redis.call('EXPIRE', hour_key, ARGV[5])
end
return 1
"""


def _script_arguments(task_id: str, task_name: str, state: str, counted_ttl_s: int) -> tuple[list[str], list[Any]]:
    keys = [COUNTED_STATE_KEY.format(task_id=task_id), STATE_COUNTS_KEY.format(task_name=task_name)]
    arguments = [state, task_name, counted_ttl_s, COMPLETIONS_PREFIX, COMPLETIONS_TTL_S]
    return keys, arguments


def record_state_sync(client: redis.Redis, task_id: str, task_name: str, state: str, counted_ttl_s: int) -> None:
    """Count a state change from a worker process."""
    keys, arguments = _script_arguments(task_id, task_name, state, counted_ttl_s)
    client.register_script(RECORD_STATE_SCRIPT)(keys=keys, args=arguments)


# NOTE: PENDING and STARTED are gauges. A message removed from a queue without running
# (a purged queue) or a task whose worker died for good stays counted there.
class TaskCounters:
    """Counts state changes from the API process and reads the figures for status_info."""

    def __init__(self, client: aioredis.Redis, counted_ttl_s: int) -> None:
        self._client = client
        self._counted_ttl_s = counted_ttl_s
        self._record_script = client.register_script(RECORD_STATE_SCRIPT)

    async def record_state(self, task_id: str, task_name: str, state: str) -> None:
        keys, arguments = _script_arguments(task_id, task_name, state, self._counted_ttl_s)
        await self._record_script(keys=keys, args=arguments)

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

