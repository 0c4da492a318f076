"""Figures for load on the API process: many waiting callers, status_info and file transfer."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import quote

from celery import Celery

from bench.clients import percentile, run_in_threads
from bench.environment import FASTTASK_DB, BenchEnvironment
from bench.records import Figure
from bench.task_figures import NOOP, ensure_noop_workers, expect_status, finished_task_id
from fasttask.constants import ISSUED_TASK_KEY, RESULT_KEY

SLEEP_TASK = "sleep_for"
FASTTASK_SLEEP_WORKER = "fasttask-worker-sleep"
# Thread slots of the sleep worker when status_info runs without the waiting-callers figure.
STATUS_SLEEP_SLOTS = 4
SLEEP_S = 1.0

STATUS_FIELDS = ["worker_status", "task_info", "pending_task_count", "system"]

MIB = 1024 * 1024


def openapi_paths(env: BenchEnvironment) -> set[str]:
    session = env.session()
    document = expect_status(session.get("/openapi.json"))
    session.close()
    return set(document.get("paths", {}))


class Sampler:
    """Call `sample` every interval_s in a thread and keep the maximum it returned."""

    def __init__(self, sample: Callable[[], float], interval_s: float = 0.02) -> None:
        self._sample = sample
        self._interval_s = interval_s
        self._stop = threading.Event()
        self.maximum = sample()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.maximum = max(self.maximum, self._sample())
            self._stop.wait(self._interval_s)

    @contextmanager
    def running(self) -> Iterator["Sampler"]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join()


class CheckLoop:
    """GET /check on one finished task, over and over in a thread, recording each duration."""

    def __init__(self, env: BenchEnvironment, task_id: str) -> None:
        self._env = env
        self._path = f"/check/{NOOP}?result_id={task_id}"
        self._stop = threading.Event()
        self.durations_s: list[float] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        session = self._env.session()
        while not self._stop.is_set():
            started = time.perf_counter()
            expect_status(session.get(self._path))
            self.durations_s.append(time.perf_counter() - started)
            self._stop.wait(0.01)
        session.close()

    @contextmanager
    def running(self) -> Iterator["CheckLoop"]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join()


def run_sleep_task(env: BenchEnvironment, seconds: float) -> float:
    session = env.session()
    body = json.dumps({"seconds": seconds}).encode()
    started = time.perf_counter()
    expect_status(session.post_json(f"/run/{SLEEP_TASK}?timeout=120", body))
    elapsed_s = time.perf_counter() - started
    session.close()
    return elapsed_s


def measure_bare_waiting_callers(env: BenchEnvironment, bare_app: Celery, callers: int) -> tuple[float, float]:
    """Return one bare apply_async().get() of the 1 s task, and the slowest of `callers` concurrent ones."""
    env.start_bare_worker("bare-worker-sleep", "threads", callers, SLEEP_TASK)
    sleep_task = bare_app.tasks[SLEEP_TASK]
    sleep_task.apply_async(kwargs={"seconds": 0}).get(timeout=120)

    def run_once(seconds: float) -> float:
        started = time.perf_counter()
        sleep_task.apply_async(kwargs={"seconds": seconds}).get(timeout=120)
        return time.perf_counter() - started

    single_s = sorted(run_once(SLEEP_S) for _ in range(3))[1]
    burst = run_in_threads(callers, callers, lambda: lambda number: run_once(SLEEP_S) and None)
    return single_s, max(burst.durations_s)


def ensure_sleep_worker(env: BenchEnvironment, slots: int) -> None:
    if env.find_running(FASTTASK_SLEEP_WORKER) is None:
        env.start_fasttask_worker(FASTTASK_SLEEP_WORKER, ENABLED_TASKS=SLEEP_TASK, WORKER_POOL="threads",
                                  WORKER_CONCURRENCY=str(slots))


def measure_waiting_callers(env: BenchEnvironment, bare_app: Celery, callers: int, concurrency: int) -> list[Figure]:
    """`callers` concurrent /run of a 1 s task on a worker with as many thread slots, and the same on bare Celery."""
    ensure_noop_workers(env, concurrency)
    ensure_sleep_worker(env, callers)
    run_sleep_task(env, 0)
    single_s = sorted(run_sleep_task(env, SLEEP_S) for _ in range(3))[1]

    check_task_id = finished_task_id(env)
    api = env.api_process()
    threads_before = api.num_threads()
    body = json.dumps({"seconds": SLEEP_S}).encode()

    def caller() -> Callable[[int], None]:
        session = env.session()

        def run(number: int) -> None:
            answer = expect_status(session.post_json(f"/run/{SLEEP_TASK}?timeout=120", body))
            if answer["state"] != "SUCCESS":
                raise RuntimeError(f"/run returned state {answer['state']!r}, expected SUCCESS")

        return run

    with Sampler(api.num_threads).running() as thread_sampler, CheckLoop(env, check_task_id).running() as checks:
        burst = run_in_threads(callers, callers, caller)

    slowest_s = max(burst.durations_s)
    check_p95_ms = percentile(checks.durations_s, 0.95) * 1000
    thread_growth = thread_sampler.maximum - threads_before
    bare_single_s, bare_slowest_s = measure_bare_waiting_callers(env, bare_app, callers)
    return [
        Figure(
            f"{callers} waiting /run callers, slowest answer", "s", slowest_s, single_s, "one /run alone",
            slowest_s / single_s, "≤ 2 × one call", slowest_s <= 2 * single_s, target_ratio=2.0, higher_is_better=False,
            note=f"task sleeps {SLEEP_S:g} s; worker pool threads × {callers}; all {callers} answered 200 SUCCESS; "
            f"wall time {burst.wall_s:.2f} s",
        ),
        Figure(
            f"{callers} waiting callers, slowest, vs. bare", "s", slowest_s, bare_slowest_s,
            f"{callers} threads of apply_async().get()", slowest_s / bare_slowest_s, "reported", None,
            higher_is_better=False,
            note=f"bare Celery's own slowest / one call: {bare_slowest_s:.2f} s / {bare_single_s:.2f} s "
            f"= {bare_slowest_s / bare_single_s:.2f}",
        ),
        Figure(
            f"API threads during {callers} waiting callers", "threads", thread_sampler.maximum, threads_before,
            "threads before", thread_growth, "flat (growth ≤ 2)", thread_growth <= 2, higher_is_better=False,
            note="ratio column is the growth in threads",
        ),
        Figure(
            f"/check p95 during {callers} waiting callers", "ms", check_p95_ms, None, "", None, "< 20 ms",
            check_p95_ms < 20.0, higher_is_better=False, note=f"{len(checks.durations_s)} checks",
        ),
    ]


def store_results(env: BenchEnvironment, count: int) -> None:
    """Write `count` finished no-op results and their issued-id keys, as the worker and API would."""
    client = env.redis_client(FASTTASK_DB)
    for start in range(0, count, 2000):
        pipeline = client.pipeline(transaction=False)
        for _ in range(min(2000, count - start)):
            task_id = str(uuid.uuid4())
            meta = {"status": "SUCCESS", "result": {"ok": True}, "traceback": None, "children": [],
                    "date_done": "2026-01-01T00:00:00", "task_id": task_id}
            pipeline.set(RESULT_KEY.format(task_id=task_id), json.dumps(meta), ex=86400)
            pipeline.set(ISSUED_TASK_KEY.format(task_id=task_id), NOOP, ex=86400 + 3600)
        pipeline.execute()


def measure_status_info(env: BenchEnvironment, sizes: list[int], calls: int, concurrency: int) -> list[Figure]:
    """POST /status_info with every field after `sizes` stored results, 2 workers online."""
    if "/status_info" not in openapi_paths(env):
        return [Figure.skipped("status_info p50", "≤ 50 ms, flat", "POST /status_info is not in this build's /openapi.json")]
    ensure_noop_workers(env, concurrency)
    ensure_sleep_worker(env, STATUS_SLEEP_SLOTS)
    finished_task_id(env)
    run_sleep_task(env, 0)

    session = env.session(timeout_s=60)
    body = json.dumps({"fields": STATUS_FIELDS}).encode()
    stored = 0
    p50_by_size: dict[int, float] = {}
    for size in sizes:
        store_results(env, size - stored)
        stored = size
        expect_status(session.post_json("/status_info", body))
        durations = [0.0] * calls
        for index in range(calls):
            started = time.perf_counter()
            expect_status(session.post_json("/status_info", body))
            durations[index] = time.perf_counter() - started
        p50_by_size[size] = percentile(durations, 0.5) * 1000
    session.close()

    empty_ms = p50_by_size[sizes[0]]
    figures = []
    for size, p50_ms in p50_by_size.items():
        growth = p50_ms / empty_ms
        met = p50_ms <= 50.0 and growth <= 1.5
        figures.append(Figure(
            f"status_info p50, {size} stored results", "ms", p50_ms, empty_ms, f"p50 at {sizes[0]} results", growth,
            "≤ 50 ms, ≤ 1.5 × the empty p50", met, target_ratio=1.5, higher_is_better=False,
            note=f"all fields, {calls} calls, 2 workers online",
        ))
    return figures


def write_test_file(path: Path, size_bytes: int) -> None:
    block = os.urandom(MIB)
    with open(path, "wb") as file:
        for _ in range(size_bytes // MIB):
            file.write(block)


def multipart_body(path: Path, boundary: str) -> tuple[Iterator[bytes], int]:
    """Return a multipart/form-data body with the file in field `file`, streamed, and its length."""
    head = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{path.name}\"\r\n"
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def chunks() -> Iterator[bytes]:
        yield head
        with open(path, "rb") as file:
            while chunk := file.read(MIB):
                yield chunk
        yield tail

    return chunks(), len(head) + path.stat().st_size + len(tail)


def measure_file_transfer(env: BenchEnvironment, size_bytes: int) -> list[Figure]:
    """Upload and download a file of size_bytes vs. `cp` of it; watch the API's peak RSS."""
    paths = openapi_paths(env)
    missing = [route for route in ("/upload", "/download") if route not in paths]
    if missing:
        reason = f"{' and '.join(missing)} not in this build's /openapi.json"
        return [Figure.skipped("upload / download", "RSS growth ≤ 64 MiB", reason)]

    work_dir = env.root / "transfer"
    work_dir.mkdir()
    source = work_dir / "source.bin"
    write_test_file(source, size_bytes)
    megabytes = size_bytes / 1e6

    started = time.perf_counter()
    subprocess.run(["cp", str(source), str(work_dir / "copy.bin")], check=True)
    cp_rate = megabytes / (time.perf_counter() - started)
    (work_dir / "copy.bin").unlink()

    api = env.api_process()
    rss_before = api.memory_info().rss
    session = env.session(timeout_s=600)
    boundary = uuid.uuid4().hex
    body, length = multipart_body(source, boundary)
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", "Content-Length": str(length)}
    rss = Sampler(lambda: api.memory_info().rss)
    with rss.running():
        started = time.perf_counter()
        stored_name = expect_status(session.request("POST", "/upload", body, headers))["file_name"]
        upload_rate = megabytes / (time.perf_counter() - started)

        started = time.perf_counter()
        response = session.open_stream(f"/download?file_name={quote(stored_name)}")
        received = 0
        with open(work_dir / "downloaded.bin", "wb") as file:
            while chunk := response.read(MIB):
                file.write(chunk)
                received += len(chunk)
        download_rate = megabytes / (time.perf_counter() - started)
    session.close()
    if response.status != 200 or received != size_bytes:
        raise RuntimeError(f"download failed: status {response.status}, {received} of {size_bytes} bytes received")
    shutil.rmtree(work_dir)

    rss_growth_mib = (rss.maximum - rss_before) / MIB
    size_label = f"{size_bytes / (1024 ** 3):g} GiB" if size_bytes >= 1024 ** 3 else f"{size_bytes // MIB} MiB"
    return [
        Figure(f"upload {size_label}", "MB/s", upload_rate, cp_rate, "cp of the same file", upload_rate / cp_rate,
               "reported", None),
        Figure(f"download {size_label}", "MB/s", download_rate, cp_rate, "cp of the same file", download_rate / cp_rate,
               "reported", None),
        Figure(f"API peak RSS growth, {size_label} up and down", "MiB", rss_growth_mib, None, "", None, "≤ 64 MiB",
               rss_growth_mib <= 64.0, higher_is_better=False),
    ]
