"""Task modules written for the original FastTask load and run unchanged."""

from __future__ import annotations

import shutil
import textwrap
from importlib.resources import files
from pathlib import Path
from typing import Iterator

import pytest

from fasttask.embedded import EmbeddedRedis
from tests.conftest import Service, build_service

# A Redis database of its own: the session-wide service also serves a get_hypotenuse queue.
REDIS_DB = 4

# The example project that fasttask_manager ships and whose layout old services follow:
# tasks/get_hypotenuse.py imports from tasks/packages/tools.py, a folder without __init__.py.
OLD_EXAMPLE_TASKS = Path(str(files("fasttask_manager"))) / "project" / "tasks"

# Another module in the old style: returns a plain dict, prints, and uses packages.tools.
OLD_STYLE_MODULE = '''
from pydantic import BaseModel

from packages.tools import xx


class Params(BaseModel):
    x: int


class Result(BaseModel):
    square: int
    label: str


def get_square(x):
    print("computing the square of", x)
    return {"square": xx(x), "label": f"{x}²"}
'''


@pytest.fixture(scope="module")
def old_service(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """An API and a worker whose tasks folder holds only old-layout modules."""
    running = build_service(tmp_path_factory.mktemp("old-tasks"), redis_server.port, TASK_QUEUE_DB=str(REDIS_DB))
    shutil.rmtree(running.tasks_dir)
    shutil.copytree(OLD_EXAMPLE_TASKS, running.tasks_dir)
    (running.tasks_dir / "get_square.py").write_text(textwrap.dedent(OLD_STYLE_MODULE), encoding="utf-8")
    try:
        running.start_worker()
        running.start_api()
        yield running
    finally:
        running.stop()


def test_old_example_keeps_its_layout() -> None:
    """Pins what makes the example 'old': helpers in a packages folder without __init__.py."""
    assert (OLD_EXAMPLE_TASKS / "packages" / "tools.py").is_file()
    assert not (OLD_EXAMPLE_TASKS / "packages" / "__init__.py").exists()
    assert "from packages.tools import" in (OLD_EXAMPLE_TASKS / "get_hypotenuse.py").read_text(encoding="utf-8")


def test_old_modules_are_served(old_service: Service) -> None:
    with old_service.client() as client:
        paths = client.get("/openapi.json").json()["paths"]

    for task in ("get_hypotenuse", "get_square"):
        assert f"/create/{task}" in paths
        assert f"/check/{task}" in paths
        assert f"/run/{task}" in paths


def test_old_example_returns_model_dump(old_service: Service) -> None:
    with old_service.client() as client:
        # The example sleeps up to 10 s at random before it answers.
        response = client.post("/run/get_hypotenuse", json={"a": 3, "b": 4}, params={"timeout": 60})

    assert response.status_code == 200, response.text
    assert response.json()["state"] == "SUCCESS"
    assert response.json()["result"] == {"hypotenuse": 5.0}


def test_old_example_error_is_failure(old_service: Service) -> None:
    with old_service.client() as client:
        response = client.post("/run/get_hypotenuse", json={"a": -1, "b": 4}, params={"timeout": 60})

    assert response.status_code == 200, response.text
    assert response.json()["state"] == "FAILURE"
    assert response.json()["result"] == "ValueError: side length must > 0"


def test_old_style_dict_result_and_print(old_service: Service) -> None:
    with old_service.client() as client:
        response = client.post("/run/get_square", json={"x": 7}, params={"timeout": 60})

    assert response.status_code == 200, response.text
    assert response.json()["result"] == {"square": 49, "label": "7²"}
    worker_log = old_service.processes[0].log_text()
    assert "computing the square of 7" in worker_log
