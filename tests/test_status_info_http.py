"""/status_info against live workers: worker state, counters, queue lengths, host figures."""

from __future__ import annotations

import os
from typing import Any, Iterator

import httpx
import pytest
import redis

from fasttask.api.status_models import StatusResponse
from tests.conftest import Service, build_service
from tests.test_revoke_http import wait_until

ALL_FIELDS = {"worker_status", "task_info", "pending_task_count", "system"}


def status(client: httpx.Client, *fields: str) -> dict[str, Any]:
    response = client.post("/status_info", json={"fields": list(fields)})
    assert response.status_code == 200, response.text
    StatusResponse.model_validate(response.json())
    return response.json()


def online_workers(client: httpx.Client) -> int:
    return status(client, "worker_status")["worker_status"]["online"]


@pytest.fixture(scope="module")
def counted(redis_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A service on its own Redis database, so its counters hold only this module's tasks."""
    running = build_service(tmp_path_factory.mktemp("counted"), redis_server.port, TASK_QUEUE_DB="2")
    try:
        running.start_api()
        yield running
    finally:
        running.stop()


def test_no_workers_is_a_normal_answer(counted: Service) -> None:
    with counted.client() as client:
        body = status(client)

    assert set(body) == ALL_FIELDS
    assert body["worker_status"] == {"online": 0, "workers": {}}
    assert body["task_info"]["total"]["states"]["SUCCESS"] == 0


def test_pending_count_per_queue(counted: Service) -> None:
    with counted.client() as client:
        task_ids = [client.post("/create/sleep_for", json={"seconds": 0}).json()["id"] for _ in range(3)]
        pending = status(client, "pending_task_count")["pending_task_count"]
        info = status(client, "task_info")["task_info"]
        for task_id in task_ids:
            client.post("/revoke", json={"result_id": task_id})

    assert pending["sleep_for"] == 3
    assert pending["noop"] == 0
    assert info["tasks"]["sleep_for"]["states"]["PENDING"] == 3


def test_pending_counted_after_script_flush(counted: Service, redis_server) -> None:
    """The API counts PENDING by the counter script's digest; after SCRIPT FLUSH it loads the script again."""
    server = redis.Redis(host="127.0.0.1", port=redis_server.port)
    with counted.client() as client:
        before = status(client, "task_info")["task_info"]["tasks"]["sleep_for"]["states"]["PENDING"]
        server.script_flush()
        task_ids = [client.post("/create/sleep_for", json={"seconds": 0}).json()["id"] for _ in range(2)]
        after = status(client, "task_info")["task_info"]["tasks"]["sleep_for"]["states"]["PENDING"]
        for task_id in task_ids:
            client.post("/revoke", json={"result_id": task_id})
    server.close()

    assert after - before == 2


def test_slot_waiting_task_counted_retry(counted: Service) -> None:
    one_at_a_time = {"concurrency_key": "retry-count", "max_concurrency": 1, "countdown": 0.5}
    body = {"seconds": 3, "fasttask_concurrency_params": one_at_a_time}
    with counted.client() as client:
        worker = counted.start_worker(WORKER_CONCURRENCY="2")
        counted.wait_until_worker_serves()
        task_ids = [client.post("/create/sleep_for", json=body).json()["id"] for _ in range(2)]
        waiting_seen = wait_until(
            lambda: status(client, "task_info")["task_info"]["tasks"]["sleep_for"]["states"]["RETRY"] == 1
        )
        finals = [client.get("/check/sleep_for", params={"result_id": task_id, "wait": 60}).json() for task_id in task_ids]
        states_after = status(client, "task_info")["task_info"]["tasks"]["sleep_for"]["states"]
        worker.stop()

    assert waiting_seen
    assert [final["state"] for final in finals] == ["SUCCESS", "SUCCESS"]
    assert states_after["RETRY"] == 0
    assert states_after["STARTED"] == 0


def test_counts_after_known_successes_and_failures(counted: Service) -> None:
    with counted.client() as client:
        before = status(client, "task_info")["task_info"]
        worker = counted.start_worker()
        counted.wait_until_worker_serves()
        for _ in range(4):
            assert client.post("/run/noop", json={}).json()["state"] == "SUCCESS"
        for _ in range(2):
            assert client.post("/run/always_fails", json={}).json()["state"] == "FAILURE"
        after = status(client, "task_info")["task_info"]
        worker.stop()

    noop_before = before["tasks"]["noop"]
    noop_after = after["tasks"]["noop"]
    fails_after = after["tasks"]["always_fails"]
    # wait_until_worker_serves ran one more noop.
    assert noop_after["states"]["SUCCESS"] - noop_before["states"]["SUCCESS"] == 5
    assert fails_after["states"]["FAILURE"] - before["tasks"]["always_fails"]["states"]["FAILURE"] == 2
    assert noop_after["states"]["STARTED"] == 0
    assert noop_after["states"]["PENDING"] == 0
    for window in ("15m", "1h", "1d"):
        assert noop_after["completed"][window]["success"] - noop_before["completed"][window]["success"] == 5
        assert fails_after["completed"][window]["failure"] == 2
        assert fails_after["completed"][window]["success"] == 0
    day = after["total"]["completed"]["1d"]
    assert day["success_per_s"] == pytest.approx(day["success"] / 86400)
    assert day["completed"] == day["success"] + day["failure"]
    minute = noop_after["completed"]["1m"]
    assert minute["success"] <= noop_after["completed"]["15m"]["success"]
    assert minute["success_per_s"] == pytest.approx(minute["success"] / 60)
    assert after["total"]["states"]["SUCCESS"] == sum(task["states"]["SUCCESS"] for task in after["tasks"].values())
    assert after["total"]["states"]["REVOKED"] >= 3


def test_worker_status_follows_worker_lifecycle(counted: Service) -> None:
    with counted.client() as client:
        worker = counted.start_worker(WORKER_CONCURRENCY="3", WORKER_NAME="status-test@node")
        assert wait_until(lambda: online_workers(client) == 1)
        task_id = client.post("/create/sleep_for", json={"seconds": 5}).json()["id"]
        assert wait_until(lambda: task_id in status(client, "worker_status")["worker_status"]["workers"]["status-test@node"]["active"])
        record = status(client, "worker_status")["worker_status"]["workers"]["status-test@node"]
        worker.stop()
        offline = online_workers(client)

    assert record["concurrency"] == 3
    assert record["pool"] == "prefork"
    assert {"noop", "sleep_for", "always_fails"} <= set(record["queues"])
    assert record["uptime_s"] >= 0
    assert record["reserved"] == []
    assert offline == 0


def test_system_figures(client: httpx.Client, service: Service) -> None:
    system = status(client, "system")["system"]

    assert system["cpu_count"] == os.cpu_count()
    assert 0 <= system["cpu_percent"] <= 100
    assert system["memory"]["total_bytes"] > 0
    assert system["files_disk"]["path"] == str(service.files_dir)
    assert system["files_disk"]["total_bytes"] > 0
    assert set(system["load_average"]) == {"1m", "5m", "15m"}


def test_only_requested_fields_returned(client: httpx.Client) -> None:
    assert set(status(client, "system", "pending_task_count")) == {"system", "pending_task_count"}
    assert set(client.post("/status_info", json={}).json()) == ALL_FIELDS
    assert set(client.post("/status_info").json()) == ALL_FIELDS


def test_get_accepts_repeated_and_comma_fields(client: httpx.Client) -> None:
    repeated = client.get("/status_info", params=[("fields", "system"), ("fields", "task_info")])
    comma = client.get("/status_info", params={"fields": "system,worker_status"})

    assert set(repeated.json()) == {"system", "task_info"}
    assert set(comma.json()) == {"system", "worker_status"}
    assert set(client.get("/status_info").json()) == ALL_FIELDS


def test_unknown_field_is_422(client: httpx.Client) -> None:
    posted = client.post("/status_info", json={"fields": ["worker_status", "cpu"]})
    got = client.get("/status_info", params={"fields": "cpu"})

    assert posted.status_code == 422
    assert got.status_code == 422
    assert "worker_status" in got.json()["detail"]


def test_misspelled_body_key_is_422(client: httpx.Client) -> None:
    response = client.post("/status_info", json={"fieldz": ["system"]})

    assert response.status_code == 422
    assert "fieldz" in response.text


def test_status_info_requires_credentials(service: Service) -> None:
    with service.client(auth=None) as anonymous:
        assert anonymous.post("/status_info", json={}).status_code == 401
        assert anonymous.post("/revoke", json={"result_id": "x"}).status_code == 401


def test_shared_service_worker_is_online(client: httpx.Client) -> None:
    workers = status(client, "worker_status")["worker_status"]

    assert workers["online"] >= 1
    for record in workers["workers"].values():
        assert "noop" in record["queues"]
