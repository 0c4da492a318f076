"""Load generators: keep-alive HTTP sessions, timed call loops and thread pools of callers.

The HTTP side uses the standard library's http.client from threads, the same shape as the
bare baseline (apply_async from threads), so both sides pay the same client overhead.
"""

from __future__ import annotations

import base64
import http.client
import itertools
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Union

RequestBody = Union[bytes, Iterable[bytes], None]

# Errors after which a keep-alive connection is reopened and the request sent once more.
RECONNECT_ERRORS = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


def basic_auth_header(user: str, password: str) -> str:
    token = base64.b64encode(f"{user}:{password}".encode("utf-8")).decode("ascii")
    return f"Basic {token}"


class HttpSession:
    """One keep-alive HTTP/1.1 connection to the API that sends Basic credentials."""

    def __init__(self, port: int, authorization: str, timeout_s: float = 120.0) -> None:
        self._port = port
        self._timeout_s = timeout_s
        self._headers = {"Authorization": authorization}
        self._connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)

    def close(self) -> None:
        self._connection.close()

    def request(
        self, method: str, path: str, body: RequestBody = None, headers: Optional[dict[str, str]] = None
    ) -> tuple[int, bytes]:
        """Send one request and return the status code and the whole response body."""
        all_headers = {**self._headers, **(headers or {})}
        try:
            return self._send(method, path, body, all_headers)
        except RECONNECT_ERRORS:
            # uvicorn closes idle keep-alive connections after 5 s; a streamed body cannot be resent.
            if body is not None and not isinstance(body, bytes):
                raise
            self._connection.close()
            return self._send(method, path, body, all_headers)

    def post_json(self, path: str, body: bytes = b"{}") -> tuple[int, bytes]:
        return self.request("POST", path, body, {"Content-Type": "application/json"})

    def get(self, path: str) -> tuple[int, bytes]:
        return self.request("GET", path)

    def open_stream(self, path: str) -> http.client.HTTPResponse:
        """Send a GET and return the response unread, for streamed downloads."""
        self._connection.request("GET", path, headers=self._headers)
        return self._connection.getresponse()

    def _send(self, method: str, path: str, body: RequestBody, headers: dict[str, str]) -> tuple[int, bytes]:
        self._connection.request(method, path, body=body, headers=headers)
        response = self._connection.getresponse()
        return response.status, response.read()


def percentile(values: list[float], fraction: float) -> float:
    """Return the value at `fraction` (0..1) of the sorted values, nearest-rank method."""
    ordered = sorted(values)
    rank = max(1, round(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def time_calls(call: Callable[[], None], count: int) -> list[float]:
    """Call `call` count times in sequence; return each call's duration in seconds."""
    durations = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        durations.append(time.perf_counter() - started)
    return durations


@dataclass
class ConcurrentRun:
    """Outcome of calls spread over threads: wall time and each call's duration in seconds."""

    wall_s: float
    durations_s: list[float]

    @property
    def rate_per_s(self) -> float:
        return len(self.durations_s) / self.wall_s


def run_in_threads(
    thread_count: int, total_calls: int, make_caller: Callable[[], Callable[[int], None]]
) -> ConcurrentRun:
    """Make one caller per thread, release all threads at once and run total_calls calls between them.

    make_caller runs inside each thread before the start (to open that thread's connection),
    and the returned function gets the call's sequence number.
    """
    numbers = itertools.count()
    start_barrier = threading.Barrier(thread_count + 1)
    durations: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work() -> None:
        try:
            caller = make_caller()
        except BaseException as exc:
            errors.append(exc)
            start_barrier.abort()
            return
        try:
            start_barrier.wait()
        except threading.BrokenBarrierError:
            return
        own_durations = []
        try:
            for number in iter(lambda: next(numbers), None):
                if number >= total_calls:
                    break
                started = time.perf_counter()
                caller(number)
                own_durations.append(time.perf_counter() - started)
        except BaseException as exc:
            errors.append(exc)
        with lock:
            durations.extend(own_durations)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(thread_count)]
    for thread in threads:
        thread.start()
    try:
        start_barrier.wait()
    except threading.BrokenBarrierError:
        for thread in threads:
            thread.join()
        raise RuntimeError(f"a caller thread failed to start: {errors[0]!r}") from errors[0]
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    wall_s = time.perf_counter() - started

    if errors:
        raise RuntimeError(f"{len(errors)} of {thread_count} caller threads failed; first error: {errors[0]!r}") from errors[0]
    return ConcurrentRun(wall_s, durations)
