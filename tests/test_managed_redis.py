"""A managed Redis reached by BROKER_URL over TLS, with a password and a database number."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import pytest
import redis
import trustme

from fasttask.embedded import EmbeddedRedis
from tests.conftest import PROJECT_ROOT, Service, build_service, free_port

PASSWORD = "managed p@ss"
DATABASE = 2


class TlsProxy:
    """A TLS-terminating TCP proxy in front of a plain server, as stunnel or a cloud Redis front end does."""

    def __init__(self, target_port: int, context: ssl.SSLContext) -> None:
        self.target_port = target_port
        self.context = context
        self.port = free_port()
        self.handshakes = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.AbstractServer | None = None

    def start(self) -> None:
        self.thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self.loop)
        self.server = future.result(10)

    def stop(self) -> None:
        async def close() -> None:
            self.server.close()
            for task in asyncio.all_tasks() - {asyncio.current_task()}:
                task.cancel()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def _listen(self) -> asyncio.AbstractServer:
        return await asyncio.start_server(self._forward, "127.0.0.1", self.port, ssl=self.context)

    async def _forward(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.handshakes += 1
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        await asyncio.gather(self._pipe(client_reader, server_writer), self._pipe(server_reader, client_writer),
                             return_exceptions=True)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()


@pytest.fixture
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_redis(tmp_path: Path, authority: trustme.CA) -> Iterator[tuple[EmbeddedRedis, TlsProxy]]:
    server = EmbeddedRedis(free_port(), tmp_path / "redis-data", password=PASSWORD)
    server.start()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    proxy = TlsProxy(server.port, context)
    proxy.start()
    yield server, proxy
    proxy.stop()
    server.stop()


def managed_url(proxy: TlsProxy, query: str) -> str:
    password = PASSWORD.replace("@", "%40").replace(" ", "%20")
    return f"rediss://:{password}@127.0.0.1:{proxy.port}/{DATABASE}?{query}"


def managed_service(tmp_path: Path, broker_url: str) -> Service:
    service = build_service(tmp_path, 1, BROKER_URL=broker_url)
    for name in ("MASTER_HOST", "TASK_QUEUE_PORT"):
        del service.env[name]
    return service


def test_tasks_run_through_tls_broker(tmp_path: Path, authority: trustme.CA, tls_redis) -> None:
    server, proxy = tls_redis
    ca_path = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(ca_path)
    service = managed_service(tmp_path, managed_url(proxy, f"ssl_cert_reqs=required&ssl_ca_certs={ca_path}"))

    try:
        worker = service.start_worker(WORKER_CONCURRENCY="1")
        api = service.start_api()
        with service.client() as client:
            response = client.post("/run/get_circle_area", json={"r": 1}, params={"timeout": 60})
    finally:
        service.stop()

    plain = redis.Redis(host="127.0.0.1", port=server.port, password=PASSWORD, db=DATABASE)
    try:
        issued = plain.exists(f"fasttask:task:{response.json()['id']}")
        other_database = redis.Redis(host="127.0.0.1", port=server.port, password=PASSWORD, db=0).dbsize()
    finally:
        plain.close()

    assert response.status_code == 200, response.text + worker.log_text() + api.log_text()
    assert response.json()["state"] == "SUCCESS"
    assert proxy.handshakes > 0
    assert issued == 1
    assert other_database == 0
    assert PASSWORD not in worker.log_text() + api.log_text()


def test_untrusted_certificate_fails_health(tmp_path: Path, tls_redis) -> None:
    server, proxy = tls_redis
    service = managed_service(tmp_path, managed_url(proxy, "ssl_cert_reqs=required"))

    try:
        service.start_api()
        with service.client() as client:
            health = client.get("/health")
    finally:
        service.stop()

    assert health.status_code == 503


def test_tls_url_without_cert_reqs_stops_start(tmp_path: Path, tls_redis) -> None:
    server, proxy = tls_redis
    service = managed_service(tmp_path, managed_url(proxy, "ssl_ca_certs=/tmp/ca.pem"))

    result = subprocess.run([sys.executable, "-m", "fasttask", "worker"], env=service.env, cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 2
    assert "BROKER_URL uses rediss:// without ssl_cert_reqs" in result.stderr
    assert "p@ss" not in result.stderr
