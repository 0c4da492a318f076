"""The docker-compose topology as processes on one machine: one Redis, one API node, two worker nodes."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import psutil
import pytest
import redis

from fasttask.embedded import EmbeddedRedis
from tests.conftest import PROJECT_ROOT, TEST_AUTH, ManagedProcess, Service, build_service, free_port, wait_for_http

pytestmark = pytest.mark.slow

# Worker A serves only the two report tasks; worker B serves every task except report_node.
WORKER_A = {"WORKER_NAME": "worker-a@topology", "ENABLED_TASKS": "report_node,report_node_copy"}
WORKER_B = {"WORKER_NAME": "worker-b@topology", "DISABLED_TASKS": "report_node"}


@pytest.fixture
def cluster_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis-compatible server of this test's own, so no other test's worker consumes its queues."""
    server = EmbeddedRedis(free_port(), tmp_path / "redis-data", password="topology secret")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def cluster(tmp_path: Path, cluster_redis: EmbeddedRedis) -> Iterator[Service]:
    service = build_service(
        tmp_path, cluster_redis.port, TASK_QUEUE_PASSWD="topology secret", WORKER_CONCURRENCY="1", RUN_TIMEOUT="20",
    )
    try:
        yield service
    finally:
        service.stop()


def start_api_node(service: Service) -> ManagedProcess:
    """Start the API node as the container does: fasttask/run.sh with NODE_TYPE=distributed_master."""
    env = {**service.env, "NODE_TYPE": "distributed_master"}
    service.log_dir.mkdir(parents=True, exist_ok=True)
    log_path = service.log_dir / "api-node.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [str(PROJECT_ROOT / "fasttask" / "run.sh")], env=env, cwd=PROJECT_ROOT,
            stdout=log_file, stderr=subprocess.STDOUT,
        )
    api = ManagedProcess("api-node", process, log_path)
    service.processes.append(api)
    wait_for_http(service.base_url + "/health", api)
    return api


def start_worker_node(service: Service, settings: dict[str, str]) -> ManagedProcess:
    return service.start_worker(NODE_TYPE="distributed_worker", **settings)


def run_task(client: httpx.Client, task: str, timeout_s: float = 60.0) -> dict:
    """Run a task through the API node and return its result; fail unless it succeeded."""
    response = client.post(f"/run/{task}", json={}, params={"timeout": timeout_s})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["state"] == "SUCCESS", body
    return body["result"]


def queue_length(server: EmbeddedRedis, queue: str) -> int:
    client = redis.Redis(host="127.0.0.1", port=server.port, password=server.password)
    try:
        return client.llen(queue)
    finally:
        client.close()


def healthcheck(service: Service, node_type: str, **settings: str) -> subprocess.CompletedProcess:
    env = {**service.env, "NODE_TYPE": node_type, **settings}
    return subprocess.run(
        [sys.executable, "-m", "fasttask", "healthcheck"],
        env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
    )


def wait_for_state(client: httpx.Client, task: str, task_id: str, state: str, timeout_s: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout_s
    body: dict = {}
    while time.monotonic() < deadline:
        body = client.get(f"/check/{task}", params={"result_id": task_id, "wait": 5}).json()
        if body["state"] == state:
            return body
    pytest.fail(f"{task} {task_id} did not reach {state} within {timeout_s} s: {body}")


def test_task_runs_only_on_serving_worker(cluster: Service, cluster_redis: EmbeddedRedis) -> None:
    api = start_api_node(cluster)
    worker_a = start_worker_node(cluster, WORKER_A)
    worker_b = start_worker_node(cluster, WORKER_B)
    worker_pids = {worker_a.process.pid, worker_b.process.pid}

    with cluster.client(TEST_AUTH) as client:
        circle = client.post("/run/get_circle_area", json={"r": 1}, params={"timeout": 60})
        assert circle.status_code == 200, circle.text
        only_a = [run_task(client, "report_node") for _ in range(6)]
        either = [run_task(client, "report_node_copy") for _ in range(6)]

    assert {result["worker_name"] for result in only_a} == {"worker-a@topology"}
    assert {result["parent_pid"] for result in only_a} == {worker_a.process.pid}
    assert {result["worker_name"] for result in either} <= {"worker-a@topology", "worker-b@topology"}
    assert {result["parent_pid"] for result in either} <= worker_pids
    assert "finished in" not in api.log_text()
    assert re.search(r"task get_circle_area \S+ finished", worker_b.log_text())
    assert not re.search(r"task get_circle_area \S+ finished", worker_a.log_text())


def test_queue_waits_then_fails_over(cluster: Service, cluster_redis: EmbeddedRedis) -> None:
    api = start_api_node(cluster)
    worker_a = start_worker_node(cluster, WORKER_A)
    worker_b = start_worker_node(cluster, WORKER_B)

    with cluster.client(TEST_AUTH) as client:
        assert run_task(client, "noop") == {"ok": True}
        assert healthcheck(cluster, "distributed_worker", WORKER_NAME="worker-a@topology").returncode == 0
        assert healthcheck(cluster, "distributed_master").returncode == 0

        worker_b.stop()

        # report_node_copy was on both workers' queues: worker A takes all of it now.
        after_stop = [run_task(client, "report_node_copy") for _ in range(4)]
        assert {result["worker_name"] for result in after_stop} == {"worker-a@topology"}

        # noop was only on worker B: it stays queued, and the API node does not run it.
        waiting = client.post("/create/noop", json={}).json()
        time.sleep(3)
        assert client.get("/check/noop", params={"result_id": waiting["id"]}).json()["state"] == "PENDING"
        assert queue_length(cluster_redis, "noop") == 1
        status = client.post("/status_info", json={"fields": ["pending_task_count", "worker_status"]}).json()
        assert status["pending_task_count"]["noop"] == 1
        assert status["worker_status"]["online"] == 1

        replacement = start_worker_node(cluster, {**WORKER_B, "WORKER_NAME": "worker-c@topology"})
        finished = wait_for_state(client, "noop", waiting["id"], "SUCCESS")

    assert finished["result"] == {"ok": True}
    assert queue_length(cluster_redis, "noop") == 0
    assert re.search(r"task noop \S+ finished", replacement.log_text())
    assert "finished in" not in api.log_text()

    worker_a.stop()
    replacement.stop()
    unhealthy = healthcheck(cluster, "distributed_worker", WORKER_NAME="worker-a@topology")
    assert unhealthy.returncode == 1
    assert "worker-a@topology did not answer a ping" in unhealthy.stderr


def test_api_node_starts_no_worker(cluster: Service) -> None:
    api = start_api_node(cluster)

    children = psutil.Process(api.process.pid).children(recursive=True)
    command_lines = [" ".join(child.cmdline()) for child in children] + [" ".join(psutil.Process(api.process.pid).cmdline())]
    assert not any("fasttask worker" in line for line in command_lines), command_lines
    assert not any("valkey" in line or "redis-server" in line for line in command_lines), command_lines
    with cluster.client(TEST_AUTH) as client:
        waiting = client.post("/create/noop", json={}).json()
        time.sleep(2)
        assert client.get("/check/noop", params={"result_id": waiting["id"]}).json()["state"] == "PENDING"
