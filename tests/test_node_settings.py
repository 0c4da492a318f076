"""Node and worker settings on real processes: NODE_TYPE, pools, concurrency, time limits, UVICORN_WORKERS, HTTPS."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import psutil
import pytest
import redis
import trustme

from fasttask.cli import worker_arguments
from fasttask.embedded import EmbeddedRedis
from fasttask.settings import Settings
from tests.conftest import (
    PROJECT_ROOT, TEST_AUTH, ManagedProcess, Service, build_service, clean_environment, free_port, start_process,
)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A server of this test's own, so the session service's worker cannot take these tests' tasks."""
    server = EmbeddedRedis(free_port(), tmp_path / "redis-data")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def node(tmp_path: Path, own_redis: EmbeddedRedis) -> Iterator[Service]:
    service = build_service(tmp_path, own_redis.port, RUN_TIMEOUT="30")
    try:
        yield service
    finally:
        service.stop()


def run_task(service: Service, task: str, params: dict, timeout_s: float = 60.0) -> dict:
    with service.client() as client:
        response = client.post(f"/run/{task}", json=params, params={"timeout": timeout_s})
    assert response.status_code == 200, response.text
    return response.json()


def pool_children(worker: ManagedProcess) -> list[psutil.Process]:
    return psutil.Process(worker.process.pid).children()


def wait_for_children(worker: ManagedProcess, count: int, timeout_s: float = 30.0) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        children = pool_children(worker)
        if len(children) >= count:
            return children
        time.sleep(0.2)
    pytest.fail(f"worker has {len(pool_children(worker))} pool processes, expected {count}:\n{worker.log_text()}")


def test_soft_time_limit_fails_task(tmp_path: Path, own_redis: EmbeddedRedis) -> None:
    service = build_service(tmp_path, own_redis.port, SOFT_TIME_LIMIT="1", TIME_LIMIT="10", VISIBILITY_TIMEOUT="20")
    try:
        worker = service.start_worker(WORKER_CONCURRENCY="1")
        service.start_api()

        over_limit = run_task(service, "sleep_for", {"seconds": 5})
        after = run_task(service, "noop", {})
    finally:
        service.stop()

    assert over_limit["state"] == "FAILURE"
    assert "SOFT_TIME_LIMIT of 1 s" in over_limit["result"]
    assert "sleep_for" in over_limit["result"]
    assert after["state"] == "SUCCESS"
    assert "SOFT_TIME_LIMIT" in worker.log_text()


def test_task_within_soft_time_limit_succeeds(tmp_path: Path, own_redis: EmbeddedRedis) -> None:
    service = build_service(tmp_path, own_redis.port, SOFT_TIME_LIMIT="3", TIME_LIMIT="10", VISIBILITY_TIMEOUT="20")
    try:
        service.start_worker(WORKER_CONCURRENCY="1")
        service.start_api()

        body = run_task(service, "sleep_for", {"seconds": 0.5})
    finally:
        service.stop()

    assert body["state"] == "SUCCESS"
    assert body["result"] == {"slept": 0.5}


def test_unordered_limits_stop_worker(node: Service) -> None:
    env = {**node.env, "SOFT_TIME_LIMIT": "100", "TIME_LIMIT": "200", "VISIBILITY_TIMEOUT": "150"}

    result = subprocess.run([sys.executable, "-m", "fasttask", "worker"], env=env, cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 2
    assert "TIME_LIMIT (200) must be less than VISIBILITY_TIMEOUT (150)" in result.stderr


def test_threads_pool_runs_in_worker_process(node: Service) -> None:
    worker = node.start_worker(WORKER_POOL="threads", WORKER_CONCURRENCY="4")
    node.start_api()

    body = run_task(node, "report_node", {})

    assert body["result"]["pid"] == worker.process.pid
    assert pool_children(worker) == []
    assert "WORKER_POOL=threads does not enforce SOFT_TIME_LIMIT" in worker.log_text()


def test_prefork_pool_starts_concurrency_processes(node: Service) -> None:
    worker = node.start_worker(WORKER_POOL="prefork", WORKER_CONCURRENCY="3")
    node.start_api()

    body = run_task(node, "report_node", {})
    children = wait_for_children(worker, 3)

    assert len(children) == 3
    assert body["result"]["parent_pid"] == worker.process.pid
    assert body["result"]["pid"] in {child.pid for child in children}


def test_default_concurrency_is_cpu_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORKER_CONCURRENCY", raising=False)
    monkeypatch.setenv("MASTER_HOST", "127.0.0.1")

    arguments = worker_arguments(Settings(), ["noop"])

    assert arguments[arguments.index("--concurrency") + 1] == str(os.cpu_count())
    assert arguments[arguments.index("--pool") + 1] == "prefork"


def test_empty_variable_means_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_CONCURRENCY", "")
    monkeypatch.setenv("ENABLED_TASKS", "")

    settings = Settings()

    assert settings.worker_concurrency is None
    assert settings.enabled_tasks == []


@pytest.mark.parametrize("node_type", ["distributed_master", "distributed_worker"])
def test_distributed_node_requires_broker(tmp_path: Path, node_type: str) -> None:
    env = clean_environment(NODE_TYPE=node_type, FILES_DIR=str(tmp_path / "files"))

    result = subprocess.run([sys.executable, "-m", "fasttask", "serve"], env=env, cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 2
    assert f"NODE_TYPE={node_type} needs the shared broker: set MASTER_HOST" in result.stderr


def test_serve_as_worker_node_starts_only_worker(node: Service) -> None:
    serve = start_process("serve-worker", ["serve"], {**node.env, "NODE_TYPE": "distributed_worker"}, node.log_dir)
    node.processes.append(serve)
    node.start_api()

    body = run_task(node, "get_circle_area", {"r": 2})

    command_lines = [" ".join(child.cmdline()) for child in psutil.Process(serve.process.pid).children()]
    assert body["state"] == "SUCCESS"
    assert len(command_lines) == 1
    assert command_lines[0].endswith("-m fasttask worker")
    assert not any("valkey" in line for line in command_lines)


def test_uvicorn_workers_start_api_processes(node: Service) -> None:
    node.env["UVICORN_WORKERS"] = "2"
    node.start_worker(WORKER_CONCURRENCY="1")
    api = node.start_api()

    body = run_task(node, "noop", {})
    children = psutil.Process(api.process.pid).children()
    serving = [child for child in children if "spawn_main" in " ".join(child.cmdline())]

    assert body["state"] == "SUCCESS"
    assert len(serving) == 2


def test_https_with_certificate_and_key(tmp_path: Path, own_redis: EmbeddedRedis) -> None:
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1")
    certificate_path = tmp_path / "server.pem"
    key_path = tmp_path / "server.key"
    certificate.cert_chain_pems[0].write_to_path(certificate_path)
    certificate.private_key_pem.write_to_path(key_path)
    service = build_service(tmp_path, own_redis.port, SSL_CERTFILE=str(certificate_path), SSL_KEYFILE=str(key_path))
    https_url = service.base_url.replace("http://", "https://")
    trusted = ssl.create_default_context()
    authority.configure_trust(trusted)

    try:
        api = start_process("api", ["api"], service.env, service.log_dir)
        service.processes.append(api)
        health = wait_for_https(f"{https_url}/health", trusted, api)
        with httpx.Client(verify=trusted, auth=TEST_AUTH) as client:
            docs = client.get(f"{https_url}/openapi.json")
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{service.base_url}/health", timeout=5)
        probe = subprocess.run([sys.executable, "-m", "fasttask", "healthcheck"],
                               env={**service.env, "NODE_TYPE": "distributed_master"},
                               cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    finally:
        service.stop()

    assert health.status_code == 200
    assert docs.status_code == 200
    assert probe.returncode == 0, probe.stderr


def wait_for_https(url: str, trusted: ssl.SSLContext, process: ManagedProcess, timeout_s: float = 30.0) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.process.poll() is None, process.log_text()
        try:
            return httpx.get(url, verify=trusted, timeout=2)
        except httpx.TransportError:
            time.sleep(0.2)
    pytest.fail(f"{url} did not answer within {timeout_s} s:\n{process.log_text()}")


def test_time_limit_kills_task(tmp_path: Path, own_redis: EmbeddedRedis) -> None:
    service = build_service(tmp_path, own_redis.port, SOFT_TIME_LIMIT="1", TIME_LIMIT="2", VISIBILITY_TIMEOUT="20")
    try:
        service.start_worker(WORKER_CONCURRENCY="1")
        service.start_api()

        killed = run_task(service, "ignore_soft_limit", {"seconds": 8})
        after = run_task(service, "noop", {})
    finally:
        service.stop()

    assert killed["state"] == "FAILURE"
    assert "TIME_LIMIT of 2 s" in killed["result"]
    assert after["state"] == "SUCCESS"


def test_result_expires_sets_result_ttl(node: Service, own_redis: EmbeddedRedis) -> None:
    node.env["RESULT_EXPIRES"] = "120"
    node.start_worker(WORKER_CONCURRENCY="1")
    node.start_api()

    body = run_task(node, "noop", {})
    client = redis.Redis(host="127.0.0.1", port=own_redis.port)
    try:
        ttl = client.ttl(f"celery-task-meta-{body['id']}")
    finally:
        client.close()

    assert 0 < ttl <= 120


def test_healthcheck_fails_without_api(node: Service) -> None:
    env = {**node.env, "NODE_TYPE": "distributed_master", "PORT": str(free_port())}

    result = subprocess.run([sys.executable, "-m", "fasttask", "healthcheck"], env=env, cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 1
    assert "/health failed" in result.stderr


def test_healthcheck_invalid_settings_exit_one(tmp_path: Path) -> None:
    env = clean_environment(NODE_TYPE="distributed_worker", FILES_DIR=str(tmp_path / "files"))

    result = subprocess.run([sys.executable, "-m", "fasttask", "healthcheck"], env=env, cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 1
    assert "needs the shared broker" in result.stderr
