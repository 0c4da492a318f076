"""Every environment variable FastTask reads, parsed and validated once."""

from __future__ import annotations

import os
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Optional
from urllib.parse import parse_qs, quote, urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from fasttask.constants import (
    DEFAULT_PORT,
    DEFAULT_REDIS_PORT,
    INTERNAL_DIR_NAME,
    MIN_FILE_EXPIRATION_S,
    USERS_FILE_NAME,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent

SECRET_FIELDS = {"task_queue_passwd", "broker_url", "result_backend_url"}


class NodeType(str, Enum):
    SINGLE_NODE = "single_node"
    DISTRIBUTED_MASTER = "distributed_master"
    DISTRIBUTED_WORKER = "distributed_worker"


class WorkerPool(str, Enum):
    PREFORK = "prefork"
    THREADS = "threads"
    SOLO = "solo"


class SettingsError(Exception):
    """A setting has an invalid value; the message names the variable and the value."""


def split_names(value: object) -> list[str]:
    """Parse a comma-separated list such as ENABLED_TASKS into stripped, non-empty names."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(item).strip() for item in value if str(item).strip()]
    return [item.strip() for item in str(value).split(",") if item.strip()]


NameList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    """FastTask configuration; every field is read from the environment variable of the same name."""

    # An empty variable means "use the default", so a compose file can pass ${VAR:-} through.
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True, env_ignore_empty=True)

    # Broker and result backend.
    master_host: Optional[str] = Field(None, description="Redis host; unset means embedded Redis in single-node mode")
    task_queue_port: int = Field(DEFAULT_REDIS_PORT, ge=1, le=65535)
    task_queue_passwd: Optional[SecretStr] = None
    task_queue_db: int = Field(0, ge=0)
    broker_url: Optional[SecretStr] = Field(None, description="full broker URL, replaces the three Redis variables")
    result_backend_url: Optional[SecretStr] = Field(None, description="Redis URL for results, defaults to the broker")

    # Routes.
    api_create: bool = True
    api_check: bool = True
    api_run: bool = True
    api_revoke: bool = True
    api_status_info: bool = True
    api_file_upload: bool = True
    api_file_download: bool = True
    api_docs: bool = True
    api_redoc: bool = True

    # HTTP server.
    host: str = "0.0.0.0"
    port: int = Field(DEFAULT_PORT, ge=1, le=65535)
    uvicorn_workers: int = Field(1, ge=1)
    root_path: str = ""
    ssl_certfile: Optional[Path] = None
    ssl_keyfile: Optional[Path] = None
    access_log: bool = False

    # Waiting for results.
    run_timeout: float = Field(25.0, gt=0, description="seconds /run waits before it returns 202")
    max_wait: float = Field(300.0, gt=0, description="upper bound for /run timeout and /check wait, seconds")

    # Worker limits, seconds.
    soft_time_limit: int = Field(3600, gt=0)
    time_limit: int = Field(3660, gt=0)
    visibility_timeout: int = Field(3900, gt=0)
    result_expires: int = Field(86400, gt=0)
    requeue_on_worker_lost: bool = Field(
        True, description="re-queue a task whose worker process died; false ends it as FAILURE naming the worker",
    )

    # Node role and worker.
    node_type: NodeType = NodeType.SINGLE_NODE
    enabled_tasks: NameList = Field(default_factory=list)
    disabled_tasks: NameList = Field(default_factory=list)
    worker_concurrency: Optional[int] = Field(None, ge=1)
    worker_pool: WorkerPool = WorkerPool.PREFORK
    worker_name: Optional[str] = Field(None, description="Celery node name, default fasttask-<pid>@<host>")

    # Folders and access.
    tasks_dir: Path = PROJECT_ROOT / "fasttask" / "tasks"
    files_dir: Path = PROJECT_ROOT / "files"
    allow_anonymous: bool = False
    login_failure_limit: int = Field(10, ge=1, description="failed logins per client address before 429")
    login_failure_window: float = Field(60.0, gt=0, description="seconds over which failed logins are counted")
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1, description="largest request body except uploads, bytes")
    log_level: str = "INFO"

    # Uploads, downloads and the expiry of files in the files folder.
    max_upload_bytes: int = Field(1024**3, gt=0, description="largest accepted upload in bytes; larger ones get 413")
    file_expiration_seconds: Optional[int] = Field(
        None, ge=MIN_FILE_EXPIRATION_S,
        description="age in seconds after which files are deleted; default 2 x TIME_LIMIT, at least 60",
    )
    file_cleanup_enabled: bool = True
    file_cleanup_interval_seconds: float = Field(60.0, gt=0, description="seconds between two expiry passes")

    @field_validator("enabled_tasks", "disabled_tasks", mode="before")
    @classmethod
    def _split_names(cls, value: object) -> list[str]:
        return split_names(value)

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @model_validator(mode="after")
    def _check_limits_order(self) -> "Settings":
        if not self.soft_time_limit < self.time_limit:
            raise ValueError(
                f"SOFT_TIME_LIMIT ({self.soft_time_limit}) must be less than TIME_LIMIT ({self.time_limit})"
            )
        if not self.time_limit < self.visibility_timeout:
            raise ValueError(
                f"TIME_LIMIT ({self.time_limit}) must be less than VISIBILITY_TIMEOUT "
                f"({self.visibility_timeout}), or a running task would be delivered twice"
            )
        if self.run_timeout > self.max_wait:
            raise ValueError(f"RUN_TIMEOUT ({self.run_timeout:g}) must not exceed MAX_WAIT ({self.max_wait:g})")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("SSL_CERTFILE and SSL_KEYFILE must be set together")
        if self.broker_url is not None and not self.broker_is_redis and self.result_backend_url is None:
            raise ValueError(
                "RESULT_BACKEND_URL is missing: a broker that is not Redis needs a redis:// or rediss:// URL for the results"
            )
        if not is_redis_url(self.result_backend):
            raise ValueError(
                f"invalid RESULT_BACKEND_URL {mask_url_password(self.result_backend)!r}: it must be a redis:// or "
                "rediss:// URL, because the API and the workers keep results, revoke markers and counters in Redis"
            )
        for variable, url in (("BROKER_URL", self.broker_url), ("RESULT_BACKEND_URL", self.result_backend_url)):
            if url is not None and not has_tls_verification_mode(url.get_secret_value()):
                raise ValueError(
                    f"{variable} uses rediss:// without ssl_cert_reqs: add ?ssl_cert_reqs=required "
                    "(and &ssl_ca_certs=/path/to/ca.pem for a private certificate authority)"
                )
        if self.node_type != NodeType.SINGLE_NODE and not self.has_external_broker:
            raise ValueError(
                f"NODE_TYPE={self.node_type.value} needs the shared broker: set MASTER_HOST "
                "(with TASK_QUEUE_PORT and TASK_QUEUE_PASSWD) or BROKER_URL"
            )
        return self

    @property
    def has_external_broker(self) -> bool:
        return self.master_host is not None or self.broker_url is not None

    @property
    def broker(self) -> str:
        """Broker URL with the password percent-encoded; never log it, use `broker_display`."""
        if self.broker_url is not None:
            return self.broker_url.get_secret_value()
        return self._redis_url()

    @property
    def result_backend(self) -> str:
        if self.result_backend_url is not None:
            return self.result_backend_url.get_secret_value()
        if self.broker_url is not None and self.broker_is_redis:
            return self.broker
        return self._redis_url()

    @property
    def broker_is_redis(self) -> bool:
        return is_redis_url(self.broker)

    @property
    def broker_display(self) -> str:
        return mask_url_password(self.broker)

    @property
    def users_file(self) -> Path:
        return self.files_dir / USERS_FILE_NAME

    @property
    def internal_dir(self) -> Path:
        return self.files_dir / INTERNAL_DIR_NAME

    @property
    def file_expiration_s(self) -> int:
        """Age after which files expire: a queued task's input and a finished task's output both outlive a run."""
        if self.file_expiration_seconds is not None:
            return self.file_expiration_seconds
        return max(MIN_FILE_EXPIRATION_S, 2 * self.time_limit)

    def _redis_url(self) -> str:
        host = self.master_host or "127.0.0.1"
        credentials = ""
        if self.task_queue_passwd is not None and self.task_queue_passwd.get_secret_value():
            credentials = ":" + quote(self.task_queue_passwd.get_secret_value(), safe="") + "@"
        return f"redis://{credentials}{host}:{self.task_queue_port}/{self.task_queue_db}"


def has_tls_verification_mode(url: str) -> bool:
    """Tell whether a URL is not rediss://, or names ssl_cert_reqs.

    Without ssl_cert_reqs, kombu 5.x connects to a rediss:// broker without checking the
    server's certificate, and Celery's Redis result backend rejects the URL.
    """
    parts = urlsplit(url)
    return parts.scheme != "rediss" or "ssl_cert_reqs" in parse_qs(parts.query)


def is_redis_url(url: str) -> bool:
    return url.startswith(("redis://", "rediss://"))


def mask_url_password(url: str) -> str:
    """Replace the password in a URL with '***' so the URL can be logged.

    The credentials end at the last '@': a password that is not percent-encoded may contain
    '/', '#' or '?', where urlsplit would end the host part and miss the password.
    """
    scheme, separator, rest = url.partition("://")
    credentials, at_sign, location = rest.rpartition("@")
    if not separator or not at_sign:
        return url

    user, colon, _ = credentials.partition(":")
    if not colon:
        return url
    return f"{scheme}://{user}:***@{location}"


def _environment_value(field_name: str) -> Optional[str]:
    for key, value in os.environ.items():
        if key.lower() == field_name:
            return value
    return None


def _describe_error(error: dict) -> str:
    if not error["loc"]:
        return error["msg"].removeprefix("Value error, ")
    field_name = str(error["loc"][0])
    variable = field_name.upper()
    if field_name in SECRET_FIELDS:
        shown = "<hidden>"
    else:
        shown = repr(_environment_value(field_name))
    return f"invalid value {shown} for {variable}: {error['msg']}"


def load_settings() -> Settings:
    """Read the settings from the environment; raise SettingsError naming each bad variable."""
    try:
        return Settings()
    except ValidationError as exc:
        reasons = "; ".join(_describe_error(error) for error in exc.errors())
        raise SettingsError(reasons) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read on first use."""
    return load_settings()
