"""The PyPI client fasttask_manager, unmodified, against a live FastTask.

The upload, download and revoke cases skip with a reason when this build does not serve
those routes, which then are absent from /openapi.json. They run as soon as the routes exist.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import pytest
import requests
from fasttask_manager.async_manager import AsyncManager
from fasttask_manager.manager import Manager

from tests.conftest import TEST_AUTH, Service

# Sent by create_and_wait_result at INFO level: "...: cost: <s> create_task resp: {'id': '<id>', ...}".
CREATED_ID_PATTERN = re.compile(r"create_task resp: \{'id': '([^']+)'")


def manager_options(service: Service) -> dict:
    address = urlsplit(service.base_url)
    return {
        "host": address.hostname,
        "port": address.port,
        "protocol": "http",
        "auth_user": TEST_AUTH[0],
        "auth_passwd": TEST_AUTH[1],
        # One try: a failed request fails the test at once instead of after 5 retries.
        "tries": 1,
    }


@pytest.fixture
def manager(service: Service) -> Manager:
    return Manager(**manager_options(service))


@pytest.fixture
def async_manager(service: Service) -> AsyncManager:
    return AsyncManager(**manager_options(service))


@pytest.fixture(scope="module")
def served_paths(service: Service) -> set[str]:
    with service.client() as client:
        return set(client.get("/openapi.json").json()["paths"])


def require_route(served_paths: set[str], path: str) -> None:
    if path not in served_paths:
        pytest.skip(f"this build does not serve {path} (absent from /openapi.json); the client case needs it")


class CreatedIdRecorder(logging.Handler):
    """Catches the task id that create_and_wait_result logs right after it created the task."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.task_id: str | None = None
        self.created = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        match = CREATED_ID_PATTERN.search(record.getMessage())
        if match:
            self.task_id = match.group(1)
            self.created.set()


@pytest.fixture
def recorded_logger() -> Iterator[tuple[logging.Logger, CreatedIdRecorder]]:
    logger = logging.getLogger(f"tests.client.{id(object())}")
    logger.setLevel(logging.INFO)
    recorder = CreatedIdRecorder()
    logger.addHandler(recorder)
    yield logger, recorder
    logger.removeHandler(recorder)


# Manager (requests).


def test_manager_run_returns_result(manager: Manager) -> None:
    response = manager.run("get_circle_area", {"r": 5})

    assert response["state"] == "SUCCESS"
    assert response["result"]["area"] == pytest.approx(78.53981633974483)


def test_manager_create_then_check(manager: Manager) -> None:
    created = manager.create_task("get_hypotenuse", {"a": 3, "b": 4})
    assert created["state"] == "PENDING"

    checked = manager.check("get_hypotenuse", created["id"])
    for _ in range(120):
        if checked["state"] == "SUCCESS":
            break
        time.sleep(0.5)
        checked = manager.check("get_hypotenuse", created["id"])

    assert checked["state"] == "SUCCESS"
    assert checked["id"] == created["id"]
    assert checked["result"] == {"hypotenuse": 5.0}


def test_manager_create_and_wait_success(manager: Manager) -> None:
    result = manager.create_and_wait_result("get_circle_area", {"r": 2}, check_gap=1)

    assert result == {"area": pytest.approx(12.566370614359172)}


def test_manager_create_and_wait_failure_raises(manager: Manager) -> None:
    with pytest.raises(Exception, match="ValueError: broken on purpose"):
        manager.create_and_wait_result("always_fails", {"message": "broken on purpose"}, check_gap=1)


def test_manager_check_unknown_id_raises_404(manager: Manager) -> None:
    with pytest.raises(requests.HTTPError) as raised:
        manager.check("get_circle_area", "no-such-task-id")

    assert raised.value.response.status_code == 404


def test_manager_invalid_params_raise_422(manager: Manager) -> None:
    with pytest.raises(requests.HTTPError) as raised:
        manager.run("get_circle_area", {"r": -1})

    assert raised.value.response.status_code == 422


def test_manager_wrong_password_raises_401(service: Service) -> None:
    manager = Manager(**{**manager_options(service), "auth_passwd": "wrong"})

    with pytest.raises(requests.HTTPError) as raised:
        manager.run("get_circle_area", {"r": 1})

    assert raised.value.response.status_code == 401


def test_manager_concurrency_params_accepted(manager: Manager) -> None:
    params = {"r": 1, "fasttask_concurrency_params": {"concurrency_key": "client", "max_concurrency": 1}}

    result = manager.create_and_wait_result("get_circle_area", params, check_gap=1)

    assert result == {"area": pytest.approx(3.141592653589793)}


def test_manager_upload_then_download(manager: Manager, served_paths: set[str], tmp_path: Path) -> None:
    require_route(served_paths, "/upload")
    require_route(served_paths, "/download")
    source = tmp_path / "数据 report.bin"
    source.write_bytes(bytes(range(256)) * 1000)

    file_name = manager.upload(str(source))
    target = tmp_path / "downloaded.bin"
    manager.download(file_name, str(target))

    assert isinstance(file_name, str) and file_name
    assert target.read_bytes() == source.read_bytes()


def test_manager_revoke_shows_revoked(manager: Manager, served_paths: set[str]) -> None:
    require_route(served_paths, "/revoke")
    created = manager.create_task("sleep_for", {"seconds": 30})

    response = manager.revoke(created["id"])
    checked = manager.check("sleep_for", created["id"])
    for _ in range(60):
        if checked["state"] == "REVOKED":
            break
        time.sleep(0.5)
        checked = manager.check("sleep_for", created["id"])

    assert set(response) >= {"status", "result", "message"}
    assert response["status"] == "SUCCESS"
    assert checked["state"] == "REVOKED"


def test_manager_create_and_wait_revoked_raises(
    service: Service, served_paths: set[str], recorded_logger: tuple[logging.Logger, CreatedIdRecorder],
) -> None:
    require_route(served_paths, "/revoke")
    logger, recorder = recorded_logger
    manager = Manager(**manager_options(service), logger=logger)
    outcome: dict[str, BaseException] = {}

    def wait_for_result() -> None:
        try:
            manager.create_and_wait_result("sleep_for", {"seconds": 30}, check_gap=1)
        except BaseException as exc:  # the raised error is what this test checks
            outcome["error"] = exc

    waiter = threading.Thread(target=wait_for_result)
    waiter.start()
    assert recorder.created.wait(30), "create_and_wait_result did not log the created task id"
    manager.revoke(recorder.task_id)
    waiter.join(60)

    assert not waiter.is_alive(), "create_and_wait_result kept waiting on a revoked task"
    assert "task revoked" in str(outcome.get("error"))


# AsyncManager (httpx).


def test_async_manager_run_returns_result(async_manager: AsyncManager) -> None:
    response = asyncio.run(async_manager.run("get_circle_area", {"r": 5}))

    assert response["state"] == "SUCCESS"
    assert response["result"]["area"] == pytest.approx(78.53981633974483)


def test_async_manager_create_then_check(async_manager: AsyncManager) -> None:
    async def create_then_check() -> tuple[dict, dict]:
        created = await async_manager.create_task("get_hypotenuse", {"a": 6, "b": 8})
        checked = await async_manager.check("get_hypotenuse", created["id"])
        for _ in range(120):
            if checked["state"] == "SUCCESS":
                break
            await asyncio.sleep(0.5)
            checked = await async_manager.check("get_hypotenuse", created["id"])
        return created, checked

    created, checked = asyncio.run(create_then_check())

    assert created["state"] == "PENDING"
    assert checked["state"] == "SUCCESS"
    assert checked["result"] == {"hypotenuse": 10.0}


def test_async_manager_create_and_wait_success(async_manager: AsyncManager) -> None:
    result = asyncio.run(async_manager.create_and_wait_result("get_circle_area", {"r": 3}, check_gap=1))

    assert result == {"area": pytest.approx(28.274333882308138)}


def test_async_manager_create_and_wait_failure_raises(async_manager: AsyncManager) -> None:
    with pytest.raises(Exception, match="ValueError: async failure"):
        asyncio.run(async_manager.create_and_wait_result("always_fails", {"message": "async failure"}, check_gap=1))


def test_async_manager_upload_then_download(
    async_manager: AsyncManager, served_paths: set[str], tmp_path: Path,
) -> None:
    require_route(served_paths, "/upload")
    require_route(served_paths, "/download")
    source = tmp_path / "上传.txt"
    source.write_text("异步上传 async upload\n" * 100, encoding="utf-8")
    target = tmp_path / "downloaded.txt"

    async def upload_then_download() -> str:
        file_name = await async_manager.upload(str(source))
        await async_manager.download(file_name, str(target))
        return file_name

    file_name = asyncio.run(upload_then_download())

    assert file_name
    assert target.read_bytes() == source.read_bytes()


def test_async_manager_revoke_shows_revoked(async_manager: AsyncManager, served_paths: set[str]) -> None:
    require_route(served_paths, "/revoke")

    async def create_then_revoke() -> tuple[dict, dict]:
        created = await async_manager.create_task("sleep_for", {"seconds": 30})
        response = await async_manager.revoke(created["id"])
        checked = await async_manager.check("sleep_for", created["id"])
        for _ in range(60):
            if checked["state"] == "REVOKED":
                break
            await asyncio.sleep(0.5)
            checked = await async_manager.check("sleep_for", created["id"])
        return response, checked

    response, checked = asyncio.run(create_then_revoke())

    assert response["status"] == "SUCCESS"
    assert checked["state"] == "REVOKED"


def test_async_manager_create_and_wait_revoked_raises(
    service: Service, served_paths: set[str], recorded_logger: tuple[logging.Logger, CreatedIdRecorder],
) -> None:
    require_route(served_paths, "/revoke")
    logger, recorder = recorded_logger
    waiting_manager = AsyncManager(**manager_options(service), logger=logger)
    revoking_manager = AsyncManager(**manager_options(service))

    async def revoke_once_created() -> None:
        while not recorder.created.is_set():
            await asyncio.sleep(0.1)
        await revoking_manager.revoke(recorder.task_id)

    async def wait_and_revoke() -> None:
        revoker = asyncio.create_task(revoke_once_created())
        try:
            await asyncio.wait_for(
                waiting_manager.create_and_wait_result("sleep_for", {"seconds": 30}, check_gap=1), 60,
            )
        finally:
            await asyncio.wait_for(revoker, 10)

    with pytest.raises(Exception, match="task revoked"):
        asyncio.run(wait_and_revoke())
