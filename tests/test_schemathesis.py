"""Property-based requests from /openapi.json: no server error and no response outside the schema."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from fasttask.api.app import create_app
from fasttask.embedded import EmbeddedRedis
from fasttask.registry import load_tasks
from fasttask.settings import Settings
from tests.conftest import TEST_AUTH, TEST_USERS, Service, build_service, free_port, make_tasks_dir, write_users

# .ci/run sets CI=true, which raises the count to 500 examples per operation; a developer's run stays quick.
EXAMPLES_PER_OPERATION = 500 if os.environ.get("CI", "").lower() == "true" else 25

# Waits and task run times are capped at a few seconds, so each example is short.
FUZZED_SETTINGS = {
    "RUN_TIMEOUT": "1", "MAX_WAIT": "2", "SOFT_TIME_LIMIT": "1", "TIME_LIMIT": "2", "VISIBILITY_TIMEOUT": "30",
    "LOGIN_FAILURE_LIMIT": "100000",
}

# Test tasks that sleep or run into the time limits are left out: at 500 examples per operation
# their waits alone would take about an hour, and they exercise no route the others do not.
SLOW_TEST_TASKS = ("sleep_for", "record_run", "record_interval", "ignore_soft_limit")

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def fuzzed_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """A server of its own: workers of other services on a shared server would take the fuzzed tasks."""
    server = EmbeddedRedis(free_port(), tmp_path_factory.mktemp("fuzzed-redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fuzzed_service(fuzzed_redis: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    running = build_service(tmp_path_factory.mktemp("fuzzed"), fuzzed_redis.port, **FUZZED_SETTINGS)
    remove_slow_tasks(running.tasks_dir)
    try:
        running.start_worker(WORKER_CONCURRENCY="4")
        running.start_api()
        running.wait_until_worker_serves(run_timeout_s=2)
        yield running
    finally:
        running.stop()


def remove_slow_tasks(tasks_dir: Path) -> None:
    for name in SLOW_TEST_TASKS:
        (tasks_dir / f"{name}.py").unlink()


def build_openapi_document() -> dict[str, Any]:
    """Build the OpenAPI document in this process, from the same task modules the fuzzed service serves.

    Schemathesis 4.32's lazy schema from a fixture fails under pytest 9 (it sets the removed
    `Item._nodeid`), so the operations are collected from this document and called on the live service.
    """
    root = Path(tempfile.mkdtemp(prefix="fasttask-openapi-"))
    write_users(root / "files", TEST_USERS)
    tasks_dir = make_tasks_dir(root / "tasks")
    remove_slow_tasks(tasks_dir)
    settings = Settings(
        files_dir=root / "files", tasks_dir=tasks_dir, master_host="127.0.0.1",
        **{name.lower(): value for name, value in FUZZED_SETTINGS.items()},
    )
    return create_app(settings, load_tasks(settings.tasks_dir)).openapi()


OPENAPI_DOCUMENT = build_openapi_document()
schema = schemathesis.openapi.from_dict(OPENAPI_DOCUMENT)


def test_served_document_is_the_fuzzed_one(fuzzed_service: Service) -> None:
    with fuzzed_service.client() as client:
        served = client.get("/openapi.json").json()

    assert served == OPENAPI_DOCUMENT


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck))
def test_operation_conforms_to_schema(case: schemathesis.Case, fuzzed_service: Service) -> None:
    response = case.call(base_url=fuzzed_service.base_url, auth=TEST_AUTH, timeout=30)

    case.validate_response(response, checks=CHECKS)
