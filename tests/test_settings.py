"""Settings parsing, and the start refusing bad settings with a message naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fasttask.settings import Settings, SettingsError, load_settings, mask_url_password
from tests.conftest import PROJECT_ROOT, TEST_USERS, clean_environment, is_setting_variable, make_tasks_dir, write_users


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if is_setting_variable(name):
            monkeypatch.delenv(name)
    return monkeypatch


def test_defaults(environment: pytest.MonkeyPatch) -> None:
    settings = load_settings()

    assert settings.port == 8005
    assert settings.api_create is True
    assert settings.broker == "redis://127.0.0.1:6379/0"


def test_names_are_case_insensitive(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("api_check", "false")
    environment.setenv("Api_Run", "0")

    settings = load_settings()

    assert settings.api_check is False
    assert settings.api_run is False


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("1", True), ("yes", True), ("FALSE", False), ("0", False), ("no", False)])
def test_boolean_spellings(environment: pytest.MonkeyPatch, raw: str, expected: bool) -> None:
    environment.setenv("API_DOCS", raw)

    assert load_settings().api_docs is expected


def test_invalid_boolean_names_variable_and_value(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("API_CREATE", "maybe")

    with pytest.raises(SettingsError, match=r"invalid value 'maybe' for API_CREATE"):
        load_settings()


def test_invalid_port_names_variable(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("TASK_QUEUE_PORT", "abc")

    with pytest.raises(SettingsError, match="TASK_QUEUE_PORT"):
        load_settings()


def test_soft_limit_must_be_below_hard_limit(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("SOFT_TIME_LIMIT", "100")
    environment.setenv("TIME_LIMIT", "50")

    with pytest.raises(SettingsError, match=r"SOFT_TIME_LIMIT \(100\) must be less than TIME_LIMIT \(50\)"):
        load_settings()


def test_hard_limit_must_be_below_visibility_timeout(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("TIME_LIMIT", "5000")

    with pytest.raises(SettingsError, match="VISIBILITY_TIMEOUT"):
        load_settings()


def test_password_special_characters_are_encoded(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("MASTER_HOST", "redis.internal")
    environment.setenv("TASK_QUEUE_PASSWD", "p@ss #:/ word")

    settings = load_settings()

    assert settings.broker == "redis://:p%40ss%20%23%3A%2F%20word@redis.internal:6379/0"
    assert "p@ss" not in repr(settings)
    assert settings.broker_display == "redis://:***@redis.internal:6379/0"


def test_full_broker_url_replaces_redis_variables(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("BROKER_URL", "rediss://:secret@cache.example:6380/2?ssl_cert_reqs=required")

    settings = load_settings()

    assert settings.broker == "rediss://:secret@cache.example:6380/2?ssl_cert_reqs=required"
    assert settings.result_backend == settings.broker
    assert "secret" not in settings.broker_display


def test_task_lists_are_comma_separated(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("ENABLED_TASKS", " get_circle_area, get_hypotenuse ,")

    assert load_settings().enabled_tasks == ["get_circle_area", "get_hypotenuse"]


def test_mask_url_without_password_is_unchanged() -> None:
    assert mask_url_password("redis://localhost:6379/0") == "redis://localhost:6379/0"


def test_settings_repr_hides_password() -> None:
    settings = Settings(task_queue_passwd="hunter2")

    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings)


def run_start(tmp_path: Path, command: str = "api", **overrides: str) -> subprocess.CompletedProcess:
    files_dir = tmp_path / "files"
    if not files_dir.exists():
        write_users(files_dir, TEST_USERS)
    tasks_dir = tmp_path / "tasks"
    if not tasks_dir.exists():
        make_tasks_dir(tasks_dir, include_test_tasks=False)
    env = clean_environment(FILES_DIR=str(files_dir), TASKS_DIR=str(tasks_dir), MASTER_HOST="127.0.0.1", TASK_QUEUE_PORT="1", **overrides)
    return subprocess.run(
        [sys.executable, "-m", "fasttask", command], env=env, cwd=PROJECT_ROOT,
        capture_output=True, text=True, timeout=60,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [("API_RUN", "perhaps"), ("PORT", "http"), ("TIME_LIMIT", "-5"), ("WORKER_POOL", "gevent"), ("NODE_TYPE", "master")],
)
def test_start_refuses_bad_value(tmp_path: Path, variable: str, value: str) -> None:
    completed = run_start(tmp_path, **{variable: value})

    assert completed.returncode == 2
    assert variable in completed.stderr
    assert repr(value) in completed.stderr


def test_start_refuses_limits_out_of_order(tmp_path: Path) -> None:
    completed = run_start(tmp_path, "worker", SOFT_TIME_LIMIT="60", TIME_LIMIT="30")

    assert completed.returncode == 2
    assert "SOFT_TIME_LIMIT (60) must be less than TIME_LIMIT (30)" in completed.stderr


def test_start_refuses_broken_task_module(tmp_path: Path) -> None:
    tasks_dir = make_tasks_dir(tmp_path / "tasks", include_test_tasks=False)
    (tasks_dir / "broken.py").write_text("import no_such_module_anywhere\n")

    completed = run_start(tmp_path)

    assert completed.returncode == 2
    assert "broken.py" in completed.stderr
    assert "No module named 'no_such_module_anywhere'" in completed.stderr


def test_start_refuses_module_without_function(tmp_path: Path) -> None:
    tasks_dir = make_tasks_dir(tmp_path / "tasks", include_test_tasks=False)
    (tasks_dir / "lonely.py").write_text("from pydantic import BaseModel\nclass Params(BaseModel): pass\nclass Result(BaseModel): pass\n")

    completed = run_start(tmp_path, "worker")

    assert completed.returncode == 2
    assert "lonely.py: defines no function named 'lonely'" in completed.stderr


def test_start_refuses_empty_users_file(tmp_path: Path) -> None:
    write_users(tmp_path / "files", {})

    completed = run_start(tmp_path)

    assert completed.returncode == 2
    assert "has no users" in completed.stderr
    assert "ALLOW_ANONYMOUS=true" in completed.stderr


def test_start_refuses_unreadable_users_file(tmp_path: Path) -> None:
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "user_to_passwd.json").write_text("{not json")

    completed = run_start(tmp_path)

    assert completed.returncode == 2
    assert "user_to_passwd.json" in completed.stderr


def test_worker_refuses_unknown_enabled_task(tmp_path: Path) -> None:
    completed = run_start(tmp_path, "worker", ENABLED_TASKS="get_circle_area,nope")

    assert completed.returncode == 2
    assert "'nope'" in completed.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [("MAX_UPLOAD_BYTES", "0"), ("FILE_EXPIRATION_SECONDS", "30"), ("FILE_CLEANUP_ENABLED", "maybe"),
     ("FILE_CLEANUP_INTERVAL_SECONDS", "-1")],
)
def test_bad_file_settings_name_the_variable(environment: pytest.MonkeyPatch, variable: str, value: str) -> None:
    environment.setenv(variable, value)

    with pytest.raises(SettingsError) as raised:
        load_settings()

    assert variable in str(raised.value)
    assert repr(value) in str(raised.value)


def test_file_settings_from_environment(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("max_upload_bytes", "2048")
    environment.setenv("FILE_EXPIRATION_SECONDS", "600")
    environment.setenv("FILE_CLEANUP_ENABLED", "no")

    settings = load_settings()

    assert settings.max_upload_bytes == 2048
    assert settings.file_expiration_s == 600
    assert settings.file_cleanup_enabled is False


def test_result_backend_must_be_redis(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("BROKER_URL", "amqp://guest@127.0.0.1:5672//")
    environment.setenv("RESULT_BACKEND_URL", "rpc://")
    with pytest.raises(SettingsError, match="invalid RESULT_BACKEND_URL 'rpc://': it must be a redis:// or rediss:// URL"):
        load_settings()


def test_other_broker_needs_result_backend(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("BROKER_URL", "amqp://guest@127.0.0.1:5672//")
    environment.setenv("MASTER_HOST", "127.0.0.1")
    with pytest.raises(SettingsError, match="RESULT_BACKEND_URL is missing"):
        load_settings()


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:secret@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("mongodb://u:p/ss@127.0.0.1/db", "mongodb://u:***@127.0.0.1/db"),
        ("amqp://u:p#ss@127.0.0.1//", "amqp://u:***@127.0.0.1//"),
        ("redis://u:p@ss@127.0.0.1:99999/0", "redis://u:***@127.0.0.1:99999/0"),
        ("redis://user@127.0.0.1/0", "redis://user@127.0.0.1/0"),
    ],
)
def test_mask_url_hides_unencoded_passwords(url: str, masked: str) -> None:
    assert mask_url_password(url) == masked
