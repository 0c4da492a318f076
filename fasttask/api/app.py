"""FastAPI app factory: it only assembles the routers that the API_* switches enable."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager, suppress
from typing import AsyncIterator, Optional

import psutil
import redis.asyncio as aioredis
from fastapi import Depends, FastAPI
from redis.asyncio.retry import Retry
from redis.backoff import ConstantBackoff

from fasttask.api.body_limit import BodySizeLimitMiddleware
from fasttask.api.auth import Authenticator, FailedLoginLimiter
from fasttask.api.docs import build_docs_router
from fasttask.api.errors import (
    CONTROL_ERROR_RESPONSES,
    FILE_ERROR_RESPONSES,
    TASK_ERROR_RESPONSES,
    install_error_handlers,
)
from fasttask.api.files import build_files_router
from fasttask.api.health import router as health_router
from fasttask.api.revoke import build_revoke_router
from fasttask.api.status import build_status_router
from fasttask.api.tasks import build_task_router
from fasttask.constants import REDIS_CONNECT_TIMEOUT_S, REDIS_SOCKET_TIMEOUT_S, USERS_FILE_CHECK_INTERVAL_S
from fasttask.counters import TaskCounters
from fasttask.logs import configure_logging
from fasttask.project_info import load_project_info
from fasttask.publisher import TaskPublisher, can_publish_directly
from fasttask.registry import TaskSpec, load_tasks
from fasttask.results import ResultStore
from fasttask.revocation import RevocationStore
from fasttask.settings import Settings, get_settings
from fasttask.storage import expire_files_periodically
from fasttask.users import UsersFile
from fasttask.worker import create_celery_app

logger = logging.getLogger("fasttask.api")

# The upload route streams files to disk under its own size limit.
UPLOAD_PATHS = ("/upload",)


def open_redis(url: str) -> aioredis.Redis:
    """Open a Redis pool with timeouts that let a request return 503 within 5 s.

    One retry replaces a pooled connection that broke while Redis restarted; redis-py's
    default of three retries with up to 10 s backoff would hold a request for many seconds.
    """
    return aioredis.Redis.from_url(
        url,
        socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
        socket_timeout=REDIS_SOCKET_TIMEOUT_S,
        retry=Retry(ConstantBackoff(0.1), retries=1),
        health_check_interval=30,
    )


def open_broker_redis(settings: Settings, backend_client: aioredis.Redis) -> Optional[aioredis.Redis]:
    """Return a client for the broker when it is Redis (for queue lengths), reusing the backend's if they match."""
    if settings.broker == settings.result_backend:
        return backend_client
    if settings.broker_is_redis:
        return open_redis(settings.broker)
    return None


def start_file_cleanup(settings: Settings) -> Optional[asyncio.Task]:
    if not settings.file_cleanup_enabled:
        return None
    cleanup = expire_files_periodically(settings.files_dir, settings.file_expiration_s, settings.file_cleanup_interval_seconds)
    return asyncio.create_task(cleanup, name="fasttask-file-cleanup")


def build_lifespan(settings: Settings, specs: dict[str, TaskSpec]):
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = open_redis(settings.result_backend)
        broker_client = open_broker_redis(settings, client)
        store = ResultStore(client, settings.result_expires)
        counters = TaskCounters(client, settings.result_expires)
        celery_app = create_celery_app(settings, specs, register=False)

        app.state.settings = settings
        app.state.specs = specs
        app.state.redis = client
        app.state.broker_redis = broker_client
        app.state.result_store = store
        app.state.counters = counters
        app.state.revocations = RevocationStore(client, settings.result_expires)
        app.state.celery_app = celery_app
        app.state.publisher = TaskPublisher(celery_app, store, counters, client, can_publish_directly(settings))

        # The first cpu_percent call only starts the measurement.
        psutil.cpu_percent(interval=None)
        cleanup = start_file_cleanup(settings)
        logger.info("API ready with tasks %s, broker %s", sorted(specs), settings.broker_display)
        try:
            yield
        finally:
            if cleanup is not None:
                cleanup.cancel()
                with suppress(asyncio.CancelledError):
                    await cleanup
            await store.close()
            if broker_client is not None and broker_client is not client:
                await broker_client.aclose()
            await client.aclose()
            celery_app.close()

    return lifespan


def create_app(settings: Optional[Settings] = None, specs: Optional[dict[str, TaskSpec]] = None) -> FastAPI:
    """Build the FastAPI app from the settings and the task modules."""
    settings = settings or get_settings()
    specs = specs if specs is not None else load_tasks(settings.tasks_dir)
    info = load_project_info()
    users_file = UsersFile(settings.users_file, USERS_FILE_CHECK_INTERVAL_S)
    limiter = FailedLoginLimiter(settings.login_failure_limit, settings.login_failure_window)
    authenticator = Authenticator(users_file, settings.allow_anonymous, limiter)

    app = FastAPI(
        title=info.title,
        summary=info.summary,
        description=info.description,
        version=info.version,
        root_path=settings.root_path,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=build_lifespan(settings, specs),
    )
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=settings.max_body_bytes, exempt_paths=UPLOAD_PATHS)
    install_error_handlers(app, settings)

    protected = [Depends(authenticator)]
    app.include_router(health_router)
    app.include_router(build_task_router(specs, settings), dependencies=protected, responses=TASK_ERROR_RESPONSES)
    app.include_router(build_files_router(settings), dependencies=protected, responses=FILE_ERROR_RESPONSES)
    if settings.api_revoke:
        app.include_router(build_revoke_router(), dependencies=protected, responses=CONTROL_ERROR_RESPONSES)
    if settings.api_status_info:
        app.include_router(build_status_router(), dependencies=protected, responses=CONTROL_ERROR_RESPONSES)
    app.include_router(build_docs_router(app, settings), dependencies=protected)
    return app


def create_app_from_environment() -> FastAPI:
    """Entry point for uvicorn's --factory: read settings and tasks from the environment."""
    settings = get_settings()
    configure_logging(settings.log_level)
    return create_app(settings)
