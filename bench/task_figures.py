"""Figures for the task routes: create rate, queue throughput, run round trip and check latency."""

from __future__ import annotations

import json
import time
from typing import Callable

import redis
from celery import Celery

from bench.clients import percentile, run_in_threads, time_calls
from bench.environment import BARE_DB, FASTTASK_DB, BenchEnvironment
from bench.records import Figure
from fasttask.constants import RESULT_KEY

NOOP = "noop"
FASTTASK_NOOP_WORKER = "fasttask-worker-noop"
BARE_NOOP_WORKER = "bare-worker-noop"

# Both sides are measured in alternating rounds, so a change in the machine's load hits both.
ROUNDS = 4
WARMUP_CALLS = 30

# Clients that create the tasks for the queue throughput figure, and its alternating rounds.
QUEUE_CLIENTS = 16
QUEUE_ROUNDS = 4

# kombu's Redis transport keeps delivered but unacknowledged messages in this hash.
KOMBU_UNACKED_KEY = "unacked"


def expect_status(response: tuple[int, bytes], expected: int = 200) -> dict:
    status, body = response
    if status != expected:
        raise RuntimeError(f"the API returned status {status}, expected {expected}: {body[:300]!r}")
    return json.loads(body)


def alternate_rounds(count: int, measure_fasttask: Callable[[int], list[float]], measure_bare: Callable[[int], list[float]]):
    """Run both measurements in ROUNDS alternating rounds of count / ROUNDS calls; return both duration lists."""
    per_round = max(1, count // ROUNDS)
    fasttask_durations: list[float] = []
    bare_durations: list[float] = []
    for _ in range(ROUNDS):
        fasttask_durations += measure_fasttask(per_round)
        bare_durations += measure_bare(per_round)
    return fasttask_durations, bare_durations


def purge_queue(env: BenchEnvironment, queue: str) -> None:
    for db in (FASTTASK_DB, BARE_DB):
        env.redis_client(db).delete(queue)


def measure_create_sequential(env: BenchEnvironment, bare_app: Celery, count: int) -> Figure:
    """POST /create/noop in sequence from one client vs. apply_async in sequence."""
    session = env.session()
    bare_task = bare_app.tasks[NOOP]

    def create_with_fasttask(calls: int) -> list[float]:
        return time_calls(lambda: expect_status(session.post_json(f"/create/{NOOP}")), calls)

    def create_with_bare(calls: int) -> list[float]:
        return time_calls(bare_task.apply_async, calls)

    create_with_fasttask(WARMUP_CALLS)
    create_with_bare(WARMUP_CALLS)
    fasttask_s, bare_s = alternate_rounds(count, create_with_fasttask, create_with_bare)
    session.close()

    fasttask_rate = len(fasttask_s) / sum(fasttask_s)
    bare_rate = len(bare_s) / sum(bare_s)
    ratio = fasttask_rate / bare_rate
    return Figure(
        "create rate, 1 client", "tasks/s", fasttask_rate, bare_rate, "apply_async", ratio,
        "≥ 0.5 × bare", ratio >= 0.5, target_ratio=0.5,
        note=f"{len(fasttask_s)} calls per side; p50 {percentile(fasttask_s, 0.5) * 1000:.2f} ms "
        f"vs {percentile(bare_s, 0.5) * 1000:.2f} ms",
    )


def measure_create_concurrent(env: BenchEnvironment, bare_app: Celery, clients: int, count: int) -> Figure:
    """POST /create/noop from `clients` threads vs. apply_async from as many threads."""
    fasttask_wall = bare_wall = 0.0
    per_round = max(clients, count // ROUNDS)
    for _ in range(ROUNDS):
        fasttask_wall += create_fasttask_tasks(env, per_round, clients)[1]
        bare_wall += create_bare_tasks(bare_app, per_round, clients)[1]

    fasttask_rate = per_round * ROUNDS / fasttask_wall
    bare_rate = per_round * ROUNDS / bare_wall
    ratio = fasttask_rate / bare_rate
    return Figure(
        f"create rate, {clients} clients", "tasks/s", fasttask_rate, bare_rate, f"apply_async, {clients} threads", ratio,
        "≥ 0.8 × bare", ratio >= 0.8, target_ratio=0.8, note=f"{per_round * ROUNDS} calls per side",
    )


def create_fasttask_tasks(env: BenchEnvironment, count: int, clients: int) -> tuple[list[str], float]:
    """POST /create/noop count times from `clients` threads; return the task ids and the wall time in seconds."""
    task_ids: list[str] = [""] * count

    def caller() -> Callable[[int], None]:
        session = env.session()

        def create(number: int) -> None:
            task_ids[number] = expect_status(session.post_json(f"/create/{NOOP}"))["id"]

        return create

    return task_ids, run_in_threads(clients, count, caller).wall_s


def create_bare_tasks(bare_app: Celery, count: int, clients: int) -> tuple[list[str], float]:
    """apply_async() count times from `clients` threads; return the task ids and the wall time in seconds."""
    task_ids: list[str] = [""] * count
    bare_task = bare_app.tasks[NOOP]

    def caller() -> Callable[[int], None]:
        def create(number: int) -> None:
            task_ids[number] = bare_task.apply_async().id

        return create

    return task_ids, run_in_threads(clients, count, caller).wall_s


def count_results(client: redis.Redis, task_ids: list[str]) -> int:
    found = 0
    for start in range(0, len(task_ids), 1000):
        keys = [RESULT_KEY.format(task_id=task_id) for task_id in task_ids[start:start + 1000]]
        found += client.exists(*keys)
    return found


def wait_for_drain(client: redis.Redis, queue: str, task_ids: list[str], timeout_s: float = 600.0) -> float:
    """Return the seconds from the first message a worker takes until every task has a result."""
    queued = client.llen(queue)
    deadline = time.monotonic() + timeout_s
    first_taken = None
    while time.monotonic() < deadline:
        now = time.perf_counter()
        remaining = client.llen(queue)
        if first_taken is None and remaining < queued:
            first_taken = now
        if first_taken is not None and remaining == 0 and client.hlen(KOMBU_UNACKED_KEY) == 0:
            if count_results(client, task_ids) == len(task_ids):
                return now - first_taken
        time.sleep(0.02)
    raise RuntimeError(f"the {queue!r} queue was not drained within {timeout_s:.0f} s")


def start_fasttask_noop_worker(env: BenchEnvironment, concurrency: int) -> None:
    env.start_fasttask_worker(FASTTASK_NOOP_WORKER, ENABLED_TASKS=NOOP, WORKER_POOL="prefork",
                              WORKER_CONCURRENCY=str(concurrency))


def ensure_noop_workers(env: BenchEnvironment, concurrency: int) -> None:
    """Start the FastTask and bare no-op workers unless an earlier figure left them running."""
    if env.find_running(FASTTASK_NOOP_WORKER) is None:
        start_fasttask_noop_worker(env, concurrency)
    if env.find_running(BARE_NOOP_WORKER) is None:
        env.start_bare_worker(BARE_NOOP_WORKER, "prefork", concurrency, NOOP)


def drain_with_fasttask(env: BenchEnvironment, count: int, concurrency: int) -> tuple[float, float]:
    """Create `count` tasks through the API with no worker running, then time a new worker draining them.

    Returns the creation and drain times in seconds, and stops the worker afterwards.
    """
    task_ids, create_s = create_fasttask_tasks(env, count, QUEUE_CLIENTS)
    start_fasttask_noop_worker(env, concurrency)
    drain_s = wait_for_drain(env.redis_client(FASTTASK_DB), NOOP, task_ids)
    env.stop_process(env.find_running(FASTTASK_NOOP_WORKER))
    return create_s, drain_s


def drain_with_bare(env: BenchEnvironment, bare_app: Celery, count: int, concurrency: int) -> tuple[float, float]:
    """Create `count` tasks with apply_async, then time a fresh bare worker draining them, as drain_with_fasttask does."""
    task_ids, create_s = create_bare_tasks(bare_app, count, QUEUE_CLIENTS)
    env.start_bare_worker(BARE_NOOP_WORKER, "prefork", concurrency, NOOP)
    drain_s = wait_for_drain(env.redis_client(BARE_DB), NOOP, task_ids)
    env.stop_process(env.find_running(BARE_NOOP_WORKER))
    return create_s, drain_s


def measure_queue_throughput(env: BenchEnvironment, bare_app: Celery, count: int, concurrency: int) -> list[Figure]:
    """Measure queue throughput: create and drain no-op tasks in rounds alternating FastTask and bare Celery."""
    for process in (env.find_running(FASTTASK_NOOP_WORKER), env.find_running(BARE_NOOP_WORKER)):
        if process is not None:
            env.stop_process(process)
    purge_queue(env, NOOP)

    fasttask_create_s = fasttask_drain_s = bare_create_s = bare_drain_s = 0.0
    per_round = count // QUEUE_ROUNDS
    for _ in range(QUEUE_ROUNDS):
        create_s, drain_s = drain_with_fasttask(env, per_round, concurrency)
        fasttask_create_s += create_s
        fasttask_drain_s += drain_s
        create_s, drain_s = drain_with_bare(env, bare_app, per_round, concurrency)
        bare_create_s += create_s
        bare_drain_s += drain_s
    count = per_round * QUEUE_ROUNDS

    drain_ratio = bare_drain_s / fasttask_drain_s
    total_ratio = (bare_create_s + bare_drain_s) / (fasttask_create_s + fasttask_drain_s)
    return [
        Figure(
            f"queue throughput, {count} tasks drained", "tasks/s", count / fasttask_drain_s, count / bare_drain_s,
            f"bare worker, prefork {concurrency}", drain_ratio, "≥ 0.9 × bare", drain_ratio >= 0.9, target_ratio=0.9,
            note=f"prefork pool, concurrency {concurrency}; {QUEUE_ROUNDS} rounds of {per_round} tasks per side, "
            "each timed from the first message taken to the last result",
        ),
        Figure(
            f"queue throughput, {count} tasks created then drained", "tasks/s",
            count / (fasttask_create_s + fasttask_drain_s), count / (bare_create_s + bare_drain_s),
            f"apply_async from {QUEUE_CLIENTS} threads + bare worker", total_ratio, "reported", None,
            note=f"created from {QUEUE_CLIENTS} clients in {fasttask_create_s:.1f} s vs {bare_create_s:.1f} s, "
            "plus the drain time; the worker's start is not counted",
        ),
    ]


def measure_run_round_trip(env: BenchEnvironment, bare_app: Celery, count: int, concurrency: int) -> list[Figure]:
    """POST /run/noop in sequence vs. apply_async(...).get() in sequence."""
    ensure_noop_workers(env, concurrency)
    session = env.session()
    bare_task = bare_app.tasks[NOOP]

    def run_with_fasttask(calls: int) -> list[float]:
        return time_calls(lambda: expect_status(session.post_json(f"/run/{NOOP}")), calls)

    def run_with_bare(calls: int) -> list[float]:
        return time_calls(lambda: bare_task.apply_async().get(timeout=60), calls)

    run_with_fasttask(WARMUP_CALLS)
    run_with_bare(WARMUP_CALLS)
    fasttask_s, bare_s = alternate_rounds(count, run_with_fasttask, run_with_bare)
    session.close()

    figures = []
    for label, fraction, target, target_ratio in (("p50", 0.5, "≤ 1.3 × bare", 1.3), ("p95", 0.95, "reported", None)):
        fasttask_ms = percentile(fasttask_s, fraction) * 1000
        bare_ms = percentile(bare_s, fraction) * 1000
        ratio = fasttask_ms / bare_ms
        figures.append(Figure(
            f"run round trip, {label}", "ms", fasttask_ms, bare_ms, "apply_async().get()", ratio, target,
            ratio <= target_ratio if target_ratio else None, target_ratio=target_ratio, higher_is_better=False,
            note=f"{len(fasttask_s)} calls per side",
        ))
    return figures


def finished_task_id(env: BenchEnvironment) -> str:
    session = env.session()
    task_id = expect_status(session.post_json(f"/run/{NOOP}"))["id"]
    session.close()
    return task_id


def measure_check_latency(env: BenchEnvironment, count: int, concurrency: int) -> Figure:
    """GET /check on a finished task vs. a bare Redis GET of its result key."""
    ensure_noop_workers(env, concurrency)
    task_id = finished_task_id(env)
    session = env.session()
    client = env.redis_client(FASTTASK_DB)
    result_key = RESULT_KEY.format(task_id=task_id)

    def check_with_fasttask(calls: int) -> list[float]:
        return time_calls(lambda: expect_status(session.get(f"/check/{NOOP}?result_id={task_id}")), calls)

    def get_with_redis(calls: int) -> list[float]:
        return time_calls(lambda: client.get(result_key), calls)

    check_with_fasttask(WARMUP_CALLS)
    get_with_redis(WARMUP_CALLS)
    fasttask_s, bare_s = alternate_rounds(count, check_with_fasttask, get_with_redis)
    session.close()

    fasttask_ms = percentile(fasttask_s, 0.5) * 1000
    bare_ms = percentile(bare_s, 0.5) * 1000
    overhead_ms = fasttask_ms - bare_ms
    return Figure(
        "check latency, p50", "ms", fasttask_ms, bare_ms, "Redis GET of the result", overhead_ms,
        "≤ bare + 1 ms", overhead_ms <= 1.0, higher_is_better=False,
        note=f"ratio column is FastTask − bare in ms; p95 {percentile(fasttask_s, 0.95) * 1000:.2f} ms "
        f"vs {percentile(bare_s, 0.95) * 1000:.2f} ms",
    )
