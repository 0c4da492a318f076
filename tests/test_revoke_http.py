"""/revoke against live workers: queued, running, finished and unknown tasks, and workers offline."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Callable

import httpx

from tests.conftest import Service, build_service


def wait_until(condition: Callable[[], bool], timeout_s: float = 60.0, interval_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval_s)
    return condition()


def check_state(client: httpx.Client, task: str, task_id: str) -> str:
    return client.get(f"/check/{task}", params={"result_id": task_id}).json()["state"]


def active_task_ids(client: httpx.Client) -> set[str]:
    workers = client.post("/status_info", json={"fields": ["worker_status"]}).json()["worker_status"]["workers"]
    return {task_id for worker in workers.values() for task_id in worker["active"]}


def test_revoke_unknown_id_is_404(client: httpx.Client) -> None:
    response = client.post("/revoke", json={"result_id": str(uuid.uuid4())})

    assert response.status_code == 404
    assert "never issued" in response.json()["detail"]


def test_revoke_invalid_body_is_422(client: httpx.Client) -> None:
    assert client.post("/revoke", json={}).status_code == 422
    assert client.post("/revoke", json={"result_id": ""}).status_code == 422


def test_revoke_finished_task_leaves_it(client: httpx.Client) -> None:
    task_id = client.post("/run/noop", json={}).json()["id"]

    response = client.post("/revoke", json={"result_id": task_id})

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "FAILURE"
    assert body["result"] == "SUCCESS"
    assert "already finished" in body["message"]
    assert client.get("/check/noop", params={"result_id": task_id}).json()["result"] == {"ok": True}


def test_revoke_running_task_terminates_it(client: httpx.Client, service: Service) -> None:
    task_id = client.post("/create/sleep_for", json={"seconds": 120}).json()["id"]
    assert wait_until(lambda: check_state(client, "sleep_for", task_id) == "STARTED")
    assert wait_until(lambda: task_id in active_task_ids(client))

    response = client.post("/revoke", json={"result_id": task_id})

    assert response.status_code == 200
    assert response.json()["status"] == "SUCCESS"
    assert response.json()["result"] == "REVOKED"
    checked = client.get("/check/sleep_for", params={"result_id": task_id}).json()
    assert checked["state"] == "REVOKED"
    assert wait_until(lambda: task_id not in active_task_ids(client), timeout_s=30)
    assert check_state(client, "sleep_for", task_id) == "REVOKED"
    assert client.post("/run/noop", json={}).json()["state"] == "SUCCESS"


def test_revoke_twice_reports_already_revoked(client: httpx.Client) -> None:
    task_id = client.post("/create/sleep_for", json={"seconds": 60}).json()["id"]
    first = client.post("/revoke", json={"result_id": task_id}).json()

    second = client.post("/revoke", json={"result_id": task_id}).json()

    assert first["status"] == "SUCCESS"
    assert second["status"] == "SUCCESS"
    assert second["result"] == "REVOKED"
    assert "already revoked" in second["message"]


def test_revoke_with_no_worker_then_worker_start(redis_server, tmp_path: Path) -> None:
    """A task revoked while no worker runs is skipped by a worker started later; its side effect never happens."""
    offline = build_service(tmp_path, redis_server.port, TASK_QUEUE_DB="1")
    try:
        offline.start_api()
        with offline.client() as client:
            revoked_id = client.post("/create/write_text_file", json={"file_name": "must-not-exist.txt", "text": "x"}).json()["id"]
            revoked = client.post("/revoke", json={"result_id": revoked_id})
            state_before_worker = check_state(client, "write_text_file", revoked_id)
            later_id = client.post("/create/write_text_file", json={"file_name": "later.txt", "text": "ran"}).json()["id"]

            worker = offline.start_worker()
            later = client.get("/check/write_text_file", params={"result_id": later_id, "wait": 60}).json()
            skipped_line = f"task write_text_file {revoked_id} skipped"
            assert wait_until(lambda: skipped_line in worker.log_text(), timeout_s=30), worker.log_text()
            state_after_worker = check_state(client, "write_text_file", revoked_id)

        assert revoked.status_code == 200
        assert revoked.json()["status"] == "SUCCESS"
        assert state_before_worker == "REVOKED"
        assert later["state"] == "SUCCESS"
        assert (offline.files_dir / "later.txt").read_text(encoding="utf-8") == "ran"
        assert not (offline.files_dir / "must-not-exist.txt").exists()
        assert state_after_worker == "REVOKED"
    finally:
        offline.stop()


def test_revoke_survives_worker_restart(redis_server, tmp_path: Path) -> None:
    """A task queued behind a busy worker, revoked, then the worker restarted: it still never runs."""
    restarting = build_service(tmp_path, redis_server.port, TASK_QUEUE_DB="4")
    try:
        restarting.start_api()
        worker = restarting.start_worker(WORKER_CONCURRENCY="1")
        restarting.wait_until_worker_serves()
        with restarting.client() as client:
            blocker_id = client.post("/create/sleep_for", json={"seconds": 3}).json()["id"]
            assert wait_until(lambda: check_state(client, "sleep_for", blocker_id) == "STARTED")
            queued_id = client.post("/create/sleep_for", json={"seconds": 0}).json()["id"]
            revoked = client.post("/revoke", json={"result_id": queued_id}).json()
            worker.stop()

            restarted = restarting.start_worker(WORKER_CONCURRENCY="1")
            after_id = client.post("/create/sleep_for", json={"seconds": 0}).json()["id"]
            after = client.get("/check/sleep_for", params={"result_id": after_id, "wait": 60}).json()
            skipped_line = f"task sleep_for {queued_id} skipped"
            was_skipped = wait_until(lambda: skipped_line in restarted.log_text(), timeout_s=30)
            blocker_state = check_state(client, "sleep_for", blocker_id)
            queued_state = check_state(client, "sleep_for", queued_id)

        assert revoked["status"] == "SUCCESS"
        assert after["state"] == "SUCCESS"
        assert blocker_state == "SUCCESS"
        assert queued_state == "REVOKED"
        assert was_skipped, restarted.log_text()
    finally:
        restarting.stop()
