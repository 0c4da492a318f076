"""A task survives the death of its pool process or of its whole worker."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from fasttask.embedded import EmbeddedRedis
from tests.conftest import build_service
from tests.faults.conftest import kill_process_tree, wait_for_final, wait_for_lines

pytestmark = pytest.mark.slow

# TIME_LIMIT must stay below VISIBILITY_TIMEOUT; a short timeout makes redelivery quick.
SHORT_LIMITS = {"SOFT_TIME_LIMIT": "4", "TIME_LIMIT": "5", "VISIBILITY_TIMEOUT": "6"}


def test_killed_pool_process_requeues_task_once(private_redis: EmbeddedRedis, record_dir: Path, tmp_path: Path) -> None:
    service = build_service(tmp_path, private_redis.port, **SHORT_LIMITS)
    try:
        service.start_worker(FASTTASK_TEST_RECORD_DIR=str(record_dir))
        service.start_api()
        with service.client() as client:
            task_id = client.post("/create/record_run", json={"marker": "pool", "seconds": 2}).json()["id"]
            first_pid = int(wait_for_lines(record_dir / "pool", 1)[0])
            os.kill(first_pid, signal.SIGKILL)

            status = wait_for_final(client, "record_run", task_id)
            # Wait past the visibility timeout: a third run would show up by then.
            time.sleep(int(SHORT_LIMITS["VISIBILITY_TIMEOUT"]) + 2)
            runs = (record_dir / "pool").read_text(encoding="ascii").splitlines()
    finally:
        service.stop()

    assert status["state"] == "SUCCESS", status
    assert status["result"] == {"runs": 2}
    assert len(runs) == 2
    assert int(runs[1]) != first_pid


def test_killed_pool_process_fails_task_naming_worker(private_redis: EmbeddedRedis, record_dir: Path, tmp_path: Path) -> None:
    service = build_service(tmp_path, private_redis.port, REQUEUE_ON_WORKER_LOST="false", **SHORT_LIMITS)
    try:
        service.start_worker(FASTTASK_TEST_RECORD_DIR=str(record_dir), WORKER_NAME="doomed@fault-test")
        service.start_api()
        with service.client() as client:
            task_id = client.post("/create/record_run", json={"marker": "fail", "seconds": 2}).json()["id"]
            os.kill(int(wait_for_lines(record_dir / "fail", 1)[0]), signal.SIGKILL)

            status = wait_for_final(client, "record_run", task_id)
            time.sleep(int(SHORT_LIMITS["VISIBILITY_TIMEOUT"]) + 2)
            runs = (record_dir / "fail").read_text(encoding="ascii").splitlines()
            status_later = client.get("/check/record_run", params={"result_id": task_id}).json()
    finally:
        service.stop()

    assert status["state"] == "FAILURE", status
    assert "WorkerLostError" in status["result"]
    assert "worker doomed@fault-test lost the process running this task" in status["result"]
    assert len(runs) == 1
    assert status_later["state"] == "FAILURE"


def test_killed_worker_task_completes_after_restart(private_redis: EmbeddedRedis, record_dir: Path, tmp_path: Path) -> None:
    service = build_service(tmp_path, private_redis.port, **SHORT_LIMITS)
    try:
        worker = service.start_worker(FASTTASK_TEST_RECORD_DIR=str(record_dir))
        service.start_api()
        with service.client() as client:
            task_id = client.post("/create/record_run", json={"marker": "whole", "seconds": 2}).json()["id"]
            wait_for_lines(record_dir / "whole", 1)
            kill_process_tree(worker)
            interrupted = client.get("/check/record_run", params={"result_id": task_id}).json()

            service.start_worker(FASTTASK_TEST_RECORD_DIR=str(record_dir))
            status = wait_for_final(client, "record_run", task_id)
    finally:
        service.stop()

    assert interrupted["state"] == "STARTED"
    assert status["state"] == "SUCCESS", status
    assert status["result"] == {"runs": 2}
