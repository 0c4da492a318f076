"""FastAPI app factory: it only assembles the routers that the API_* switches enable."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager, suppress
from typing import AsyncIterator, Optional

import psutil
import redis.asyncio as aioredis
from fastapi import Depends, FastAPI

from fasttask.api.auth import Authenticator, read_users
from fasttask.api.docs import build_docs_router
from fasttask.api.errors import install_error_handlers
from fasttask.api.files import build_files_router
from fasttask.api.health import router as health_router
from fasttask.api.revoke import build_revoke_router
from fasttask.api.status import build_status_router
from fasttask.api.tasks import build_task_router
from fasttask.counters import TaskCounters
from fasttask.logs import configure_logging
from fasttask.project_info import load_project_info
from fasttask.publisher import TaskPublisher, can_publish_directly
from fasttask.registry import TaskSpec, load_tasks
from fasttask.results import ResultStore
from fasttask.revocation import RevocationStore
from fasttask.settings import Settings, get_settings
from fasttask.storage import expire_files_periodically
from fasttask.worker import create_celery_app

logger = logging.getLogger("fasttask.api")


def open_redis(url: str) -> aioredis.Redis:
    return aioredis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=10, health_check_interval=30)


def open_broker_redis(settings: Settings, backend_client: aioredis.Redis) -> Optional[aioredis.Redis]:
    """Return a client for the broker when it is Redis (for queue lengths), reusing the backend's if they match."""
    if settings.broker == settings.result_backend:
        return backend_client
    if settings.broker.startswith(("redis://", "rediss://")):
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
        counters = TaskCounters(client, settings.result_expires + 3600)
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
    authenticator = Authenticator(read_users(settings.users_file), settings.allow_anonymous)

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
    install_error_handlers(app, settings)

    protected = [Depends(authenticator)]
    app.include_router(health_router)
    app.include_router(build_task_router(specs, settings), dependencies=protected)
    app.include_router(build_files_router(settings), dependencies=protected)
    if settings.api_revoke:
        app.include_router(build_revoke_router(), dependencies=protected)
    if settings.api_status_info:
        app.include_router(build_status_router(), dependencies=protected)
    app.include_router(build_docs_router(app, settings), dependencies=protected)
    return app


def create_app_from_environment() -> FastAPI:
    """Entry point for uvicorn's --factory: read settings and tasks from the environment."""
    settings = get_settings()
    configure_logging(settings.log_level)
    return create_app(settings)
