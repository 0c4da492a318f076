"""Worker state published by each worker, and the figures /status_info reads without broadcasts.

Each worker's main process runs a heartbeat thread that rewrites a JSON record (queues,
pool size, active and reserved task ids, start time) every WORKER_HEARTBEAT_S under a
key that expires after WORKER_STATE_TTL_S, and deletes it on a clean shutdown. The API
reads these records, so a worker that stops or dies disappears within a few seconds.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from typing import Any, Optional

import psutil
import redis
import redis.asyncio as aioredis
from celery import bootsteps
from celery.worker import state as worker_state

from fasttask.constants import WORKER_HEARTBEAT_S, WORKER_STATE_KEY, WORKER_STATE_TTL_S, WORKERS_KEY

logger = logging.getLogger("fasttask.monitoring")

# kombu's Redis transport keeps one list per queue and priority step, named
# "<queue>\x06\x16<priority>" except for priority 0 (kombu/transport/redis.py, kombu 5.x).
KOMBU_PRIORITY_SEPARATOR = "\x06\x16"
KOMBU_PRIORITY_STEPS = (0, 3, 6, 9)


def _request_ids(requests: Any) -> list[str]:
    # The worker's event loop changes these weak sets while this thread copies them.
    for _ in range(5):
        try:
            return sorted(request.id for request in list(requests))
        except RuntimeError:
            time.sleep(0.001)
    return []


class WorkerHeartbeat:
    """Thread in the worker's main process that keeps the worker's state record current."""

    def __init__(self, client: redis.Redis, node_name: str, queues: list[str], pool: str, concurrency: int) -> None:
        self._client = client
        self._node_name = node_name
        self._key = WORKER_STATE_KEY.format(node_name=node_name)
        self._static = {
            "name": node_name,
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "queues": sorted(queues),
            "pool": pool,
            "concurrency": concurrency,
            "started_at": time.time(),
        }
        self._started_monotonic = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fasttask-worker-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and delete the record, so the worker disappears at once."""
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            self._client.delete(self._key)
            self._client.zrem(WORKERS_KEY, self._node_name)
        except redis.RedisError as exc:
            logger.warning("cannot delete the state record of worker %s: %s", self._node_name, exc)

    def current_record(self) -> dict[str, Any]:
        active = _request_ids(worker_state.active_requests)
        reserved = [task_id for task_id in _request_ids(worker_state.reserved_requests) if task_id not in active]
        return {
            **self._static,
            "uptime_s": round(time.monotonic() - self._started_monotonic, 3),
            "active": active,
            "reserved": reserved,
        }

    def publish(self) -> None:
        record = json.dumps(self.current_record())
        with self._client.pipeline(transaction=False) as pipe:
            pipe.set(self._key, record, ex=WORKER_STATE_TTL_S)
            pipe.zadd(WORKERS_KEY, {self._node_name: time.time()})
            pipe.execute()

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self.publish()
                failures = 0
            except redis.RedisError as exc:
                failures += 1
                if failures == 1 or failures % 60 == 0:
                    logger.warning("cannot publish the state of worker %s (%d attempts): %s", self._node_name, failures, exc)
            self._stop.wait(WORKER_HEARTBEAT_S)


def build_heartbeat_step(result_backend_url: str, pool: str) -> type[bootsteps.StartStopStep]:
    """Create the worker bootstep that runs a WorkerHeartbeat while the worker runs."""

    class HeartbeatStep(bootsteps.StartStopStep):
        requires = {"celery.worker.components:Pool"}

        def __init__(self, worker: Any, **kwargs: Any) -> None:
            super().__init__(worker, **kwargs)
            self.heartbeat: Optional[WorkerHeartbeat] = None

        def start(self, worker: Any) -> None:
            client = redis.Redis.from_url(result_backend_url, socket_connect_timeout=2, socket_timeout=2)
            queues = list(worker.app.amqp.queues.consume_from or worker.app.amqp.queues)
            self.heartbeat = WorkerHeartbeat(client, worker.hostname, queues, pool, worker.concurrency)
            self.heartbeat.start()

        def stop(self, worker: Any) -> None:
            if self.heartbeat is not None:
                self.heartbeat.stop()
                self.heartbeat = None

    return HeartbeatStep


async def read_worker_status(client: aioredis.Redis) -> dict[str, Any]:
    """Return the workers whose state record has not expired, and drop expired ones from the index."""
    names = [_text(name) for name in await client.zrange(WORKERS_KEY, 0, -1)]
    records = await client.mget([WORKER_STATE_KEY.format(node_name=name) for name in names]) if names else []

    workers = {}
    expired_names = []
    for name, record in zip(names, records):
        if record is None:
            expired_names.append(name)
            continue
        workers[name] = json.loads(record)
    if expired_names:
        await client.zrem(WORKERS_KEY, *expired_names)
    return {"online": len(workers), "workers": workers}


async def read_pending_counts(broker: Optional[aioredis.Redis], queues: list[str]) -> dict[str, Optional[int]]:
    """Count the messages waiting in each queue; None per queue when the broker is not Redis."""
    if broker is None:
        return {queue: None for queue in queues}

    async with broker.pipeline(transaction=False) as pipe:
        for queue in queues:
            for priority in KOMBU_PRIORITY_STEPS:
                pipe.llen(queue if priority == 0 else f"{queue}{KOMBU_PRIORITY_SEPARATOR}{priority}")
        lengths = await pipe.execute()

    steps = len(KOMBU_PRIORITY_STEPS)
    return {queue: sum(lengths[index * steps:(index + 1) * steps]) for index, queue in enumerate(queues)}


def read_system_figures(files_dir: str) -> dict[str, Any]:
    """Collect CPU, memory, load and the files folder's disk figures of this API node (blocking, short)."""
    memory = psutil.virtual_memory()
    disk = psutil.disk_usage(files_dir)
    load_1m, load_5m, load_15m = psutil.getloadavg()
    return {
        "hostname": socket.gethostname(),
        "cpu_count": psutil.cpu_count(),
        # Measured since the previous call in this process; the API primes it at start.
        "cpu_percent": psutil.cpu_percent(interval=None),
        "load_average": {"1m": load_1m, "5m": load_5m, "15m": load_15m},
        "memory": {"total_bytes": memory.total, "available_bytes": memory.available, "percent": memory.percent},
        "files_disk": {"path": files_dir, "total_bytes": disk.total, "free_bytes": disk.free, "percent": disk.percent},
        "boot_time": psutil.boot_time(),
    }


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
