"""Hashed passwords, `user add`, live reload of the users file, failed-login limits and secrets in logs."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from fasttask.api.app import create_app
from fasttask.embedded import EmbeddedRedis
from fasttask.registry import load_tasks
from fasttask.settings import Settings
from fasttask.users import UsersFileError, check_password, hash_password, parse_password_hash, read_users
from tests.conftest import PROJECT_ROOT, TEST_AUTH, TEST_USERS, Service, build_service, clean_environment, free_port

REDIS_PASSWORD = "redis-pa55word-never-logged"
LOGIN_FAILURE_LIMIT = 3
HEALTH_PROBE = "/health"


@pytest.fixture(scope="module")
def password_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """A Redis-compatible server that requires a password, so the broker URL contains a secret."""
    server = EmbeddedRedis(free_port(), tmp_path_factory.mktemp("redis-password"), password=REDIS_PASSWORD)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def secured(password_redis: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """API and worker with a Redis password, debug logs, access logs and a low failed-login limit."""
    running = build_service(
        tmp_path_factory.mktemp("secured"), password_redis.port,
        TASK_QUEUE_PASSWD=REDIS_PASSWORD, LOG_LEVEL="DEBUG", ACCESS_LOG="true",
        LOGIN_FAILURE_LIMIT=str(LOGIN_FAILURE_LIMIT), LOGIN_FAILURE_WINDOW="600",
    )
    try:
        running.start_worker()
        running.start_api()
        running.wait_until_worker_serves()
        yield running
    finally:
        running.stop()


def client_from(service: Service, address: str, auth: tuple[str, str] | None) -> httpx.Client:
    """An HTTP client whose connections come from the given loopback address."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=service.base_url, auth=auth, timeout=30.0, transport=transport)


def run_user_add(files_dir: Path, name: str, password_input: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fasttask", "user", "add", name],
        input=password_input, capture_output=True, text=True, cwd=PROJECT_ROOT,
        env=clean_environment(FILES_DIR=str(files_dir)), timeout=60,
    )


def wait_for_status(client: httpx.Client, path: str, expected: int, timeout_s: float = 20.0) -> int:
    """Request path until it returns the expected status or timeout_s passes; return the last status."""
    deadline = time.monotonic() + timeout_s
    while True:
        status_code = client.get(path).status_code
        if status_code == expected or time.monotonic() > deadline:
            return status_code
        time.sleep(0.2)


def test_hash_password_round_trip() -> None:
    stored = hash_password("pässword:1", iterations=1000)

    assert stored.startswith("pbkdf2_sha256$1000$")
    assert parse_password_hash(stored) is not None
    assert check_password("pässword:1", stored)
    assert not check_password("pässword:2", stored)


def test_plain_password_still_checks() -> None:
    assert parse_password_hash("plain secret") is None
    assert check_password("plain secret", "plain secret")
    assert not check_password("plain secreT", "plain secret")


@pytest.mark.parametrize("stored", ["pbkdf2_sha256$x$salt$aGFzaA==", "pbkdf2_sha256$10$salt$not base64", "pbkdf2_sha256$10$$"])
def test_malformed_hash_is_a_plain_password(stored: str) -> None:
    assert parse_password_hash(stored) is None
    assert check_password(stored, stored)


def test_user_add_stores_hash_and_logs_in(secured: Service) -> None:
    result = run_user_add(secured.files_dir, "王五", "新密码 with space\n")

    assert result.returncode == 0, result.stderr
    stored = json.loads((secured.files_dir / "user_to_passwd.json").read_text(encoding="utf-8"))
    assert stored["王五"].startswith("pbkdf2_sha256$")
    assert "新密码" not in json.dumps(stored, ensure_ascii=False)
    assert stored["tester"] == TEST_USERS["tester"]
    with client_from(secured, "127.0.0.1", ("王五", "新密码 with space")) as client:
        assert wait_for_status(client, "/openapi.json", 200) == 200


def test_user_add_changes_password(secured: Service) -> None:
    assert run_user_add(secured.files_dir, "changer", "first\n").returncode == 0
    with client_from(secured, "127.0.0.1", ("changer", "first")) as client:
        assert wait_for_status(client, "/openapi.json", 200) == 200

    assert run_user_add(secured.files_dir, "changer", "second\n").returncode == 0

    with client_from(secured, "127.0.0.1", ("changer", "second")) as client:
        assert wait_for_status(client, "/openapi.json", 200) == 200


@pytest.mark.parametrize(("name", "password_input"), [("", "pw\n"), ("a:b", "pw\n"), ("empty", "\n")])
def test_user_add_rejects_bad_input(tmp_path: Path, name: str, password_input: str) -> None:
    result = run_user_add(tmp_path, name, password_input)

    assert result.returncode == 2
    assert "fasttask: failed:" in result.stderr
    assert not (tmp_path / "user_to_passwd.json").exists()


def test_edited_users_file_takes_effect(secured: Service) -> None:
    users_path = secured.files_dir / "user_to_passwd.json"
    users = json.loads(users_path.read_text(encoding="utf-8"))
    users["reloaded"] = "fresh password"
    users_path.write_text(json.dumps(users, ensure_ascii=False), encoding="utf-8")

    with client_from(secured, "127.0.0.1", ("reloaded", "fresh password")) as client:
        assert wait_for_status(client, "/openapi.json", 200) == 200


def test_broken_users_file_keeps_last_users(secured: Service) -> None:
    users_path = secured.files_dir / "user_to_passwd.json"
    good_text = users_path.read_text(encoding="utf-8")
    api = next(process for process in secured.processes if process.name == "api")

    users_path.write_text('{"tester": ', encoding="utf-8")
    try:
        deadline = time.monotonic() + 20
        while "users file not reloaded" not in api.log_text() and time.monotonic() < deadline:
            with client_from(secured, "127.0.0.1", TEST_AUTH) as client:
                assert client.get("/openapi.json").status_code == 200
            time.sleep(0.2)

        assert "users file not reloaded, keeping the" in api.log_text()
        assert str(users_path) in api.log_text()
        with client_from(secured, "127.0.0.1", TEST_AUTH) as client:
            assert client.get("/openapi.json").status_code == 200
    finally:
        users_path.write_text(good_text, encoding="utf-8")


def test_failed_logins_limit_one_client(secured: Service) -> None:
    with client_from(secured, "127.0.0.3", ("tester", "wrong")) as attacker:
        statuses = [attacker.get("/openapi.json").status_code for _ in range(LOGIN_FAILURE_LIMIT)]
        limited = attacker.get("/openapi.json")
    with client_from(secured, "127.0.0.3", TEST_AUTH) as same_client:
        limited_with_good_password = same_client.get("/openapi.json")
    with client_from(secured, "127.0.0.4", TEST_AUTH) as other_client:
        other = other_client.get("/openapi.json")

    assert statuses == [401] * LOGIN_FAILURE_LIMIT
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 600
    assert "too many failed logins from 127.0.0.3" in limited.json()["detail"]
    assert limited_with_good_password.status_code == 429
    assert other.status_code == 200


def test_missing_credentials_do_not_count(secured: Service) -> None:
    with client_from(secured, "127.0.0.5", None) as anonymous:
        statuses = {anonymous.get("/openapi.json").status_code for _ in range(LOGIN_FAILURE_LIMIT + 2)}

    assert statuses == {401}


def walk_routes(routes: list) -> Iterator[tuple[str, set[str]]]:
    """Yield (path, methods) of every route, descending into included routers."""
    for route in routes:
        if hasattr(route, "effective_candidates"):
            # FastAPI 0.16x keeps an included router as one entry of app.routes.
            yield from walk_routes(route.effective_candidates())
            continue
        original = getattr(route, "original_route", route)
        yield route.path, set(getattr(original, "methods", None) or {"GET"})


def routes_of(service: Service) -> list[tuple[str, str]]:
    """Build the service's app in this process and list every (method, path) it routes."""
    settings = Settings(
        files_dir=service.files_dir, tasks_dir=service.tasks_dir, master_host="127.0.0.1",
        task_queue_port=service.redis_port,
    )
    app = create_app(settings, load_tasks(service.tasks_dir))
    return [(method, path) for path, methods in walk_routes(app.routes) for method in sorted(methods)]


def test_only_health_answers_without_credentials(secured: Service) -> None:
    routes = routes_of(secured)
    paths = {path for _, path in routes}
    assert {"/openapi.json", "/docs", "/redoc", HEALTH_PROBE, "/create/noop"} <= paths

    open_routes = []
    with client_from(secured, "127.0.0.6", None) as anonymous:
        for method, path in routes:
            response = anonymous.request(method, path.replace("{", "").replace("}", ""), json={})
            if response.status_code != 401:
                open_routes.append((method, path, response.status_code))

    assert {path for _, path, _ in open_routes} == {HEALTH_PROBE}
    assert ("GET", HEALTH_PROBE) in [(method, path) for method, path, _ in open_routes]


def test_no_secret_in_logs_or_responses(secured: Service) -> None:
    wrong_password = "wrong-pa55word-never-logged"
    with client_from(secured, "127.0.0.7", TEST_AUTH) as client:
        created = client.post("/create/get_circle_area", json={"r": 2}).json()
        assert client.get("/check/get_circle_area", params={"result_id": created["id"], "wait": 20}).json()["state"] == "SUCCESS"
        assert client.post("/run/always_fails", json={}).json()["state"] == "FAILURE"
        assert client.post("/create/get_circle_area", json={"r": -1}).status_code == 422
        responses = [client.get("/check/noop", params={"result_id": "unknown"}).text]
    with client_from(secured, "127.0.0.8", ("tester", wrong_password)) as client:
        responses.append(client.get("/openapi.json").text)

    for process in list(secured.processes):
        process.stop()
    logs = "\n".join(process.log_text() for process in secured.processes)
    settings_repr = repr(Settings(task_queue_passwd=REDIS_PASSWORD, broker_url=f"redis://:{REDIS_PASSWORD}@127.0.0.1:1/0"))
    secrets_to_hide = [
        REDIS_PASSWORD,
        TEST_USERS["tester"],
        wrong_password,
        base64.b64encode(f"tester:{TEST_USERS['tester']}".encode()).decode(),
        base64.b64encode(f"tester:{wrong_password}".encode()).decode(),
    ]

    assert "GET /openapi.json" in logs, "the access log was not captured"
    assert "failed login for user 'tester'" in logs
    for secret in secrets_to_hide:
        assert secret not in logs
        assert secret not in settings_repr
        assert all(secret not in text for text in responses)
    assert "authorization" not in logs.lower()


@pytest.mark.parametrize(
    ("users", "reason"),
    [({"empty": ""}, "empty password"), ({"a:b": "x"}, "invalid user name"), ({"": "x"}, "invalid user name")],
)
def test_read_users_rejects_unusable_entries(tmp_path: Path, users: dict[str, str], reason: str) -> None:
    path = tmp_path / "user_to_passwd.json"
    path.write_text(json.dumps(users))

    with pytest.raises(UsersFileError, match=reason):
        read_users(path)
