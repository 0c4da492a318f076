"""Measure the API process's peak RSS while a large file is uploaded and downloaded.

Run: .venv/bin/python -m bench.upload_memory [size_mib]   (default 256 MiB)
It starts a valkey server and the API on loopback ports, streams the file through
/upload and /download, and prints the RSS before and the peak during each transfer.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from fasttask.embedded import EmbeddedRedis
from tests.conftest import TEST_AUTH, build_service, free_port

MIB = 1024 * 1024


class PeakRss:
    """Sample a process's RSS every 10 ms in a thread and keep the maximum."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self.peak_bytes = self._process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self._process.memory_info().rss)
            time.sleep(0.01)


def write_random_file(path: Path, size_mib: int) -> None:
    with path.open("wb") as handle:
        for _ in range(size_mib):
            handle.write(os.urandom(MIB))


def main() -> None:
    size_mib = int(sys.argv[1]) if len(sys.argv) > 1 else 256
    root = Path(tempfile.mkdtemp(prefix="fasttask-bench-"))
    redis = EmbeddedRedis(free_port(), root / "redis")
    redis.start()
    service = build_service(root / "service", redis.port, MAX_UPLOAD_BYTES=str((size_mib + 1) * MIB))
    try:
        api = service.start_api()
        source = root / "source.bin"
        write_random_file(source, size_mib)
        with service.client(auth=TEST_AUTH, timeout_s=600) as client:
            baseline = psutil.Process(api.process.pid).memory_info().rss
            with PeakRss(api.process.pid) as upload_peak, source.open("rb") as handle:
                stored_name = client.post("/upload", files={"file": ("source.bin", handle)}).json()["file_name"]
            with PeakRss(api.process.pid) as download_peak:
                with client.stream("GET", "/download", params={"file_name": stored_name}) as response:
                    received = sum(len(chunk) for chunk in response.iter_bytes())
        print(f"file {size_mib} MiB, downloaded {received / MIB:.0f} MiB")
        print(f"API RSS before: {baseline / MIB:.1f} MiB")
        print(f"API RSS peak during upload: {upload_peak.peak_bytes / MIB:.1f} MiB")
        print(f"API RSS peak during download: {download_peak.peak_bytes / MIB:.1f} MiB")
    finally:
        service.stop()
        redis.stop()


if __name__ == "__main__":
    main()
