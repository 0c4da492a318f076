"""FastAPI app factory: it only assembles the routers that the API_* switches enable."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import AsyncIterator, Optional

import redis.asyncio as aioredis
from fastapi import Depends, FastAPI

from fasttask.api.auth import Authenticator, read_users
from fasttask.api.docs import build_docs_router
from fasttask.api.errors import install_error_handlers
from fasttask.api.health import router as health_router
from fasttask.api.tasks import build_task_router
from fasttask.logs import configure_logging
from fasttask.project_info import load_project_info
from fasttask.publisher import TaskPublisher
from fasttask.registry import TaskSpec, load_tasks
from fasttask.results import ResultStore
from fasttask.settings import Settings, get_settings
from fasttask.worker import create_celery_app

logger = logging.getLogger("fasttask.api")


def open_redis(settings: Settings) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        settings.result_backend,
        socket_connect_timeout=3,
        socket_timeout=10,
        health_check_interval=30,
    )


def build_lifespan(settings: Settings, specs: dict[str, TaskSpec]):
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = open_redis(settings)
        store = ResultStore(client, settings.result_expires)
        celery_app = create_celery_app(settings, specs, register=False)
        app.state.redis = client
        app.state.result_store = store
        app.state.publisher = TaskPublisher(celery_app, store)
        logger.info("API ready with tasks %s, broker %s", sorted(specs), settings.broker_display)
        try:
            yield
        finally:
            await store.close()
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
    app.include_router(build_docs_router(app, settings), dependencies=protected)
    return app


def create_app_from_environment() -> FastAPI:
    """Entry point for uvicorn's --factory: read settings and tasks from the environment."""
    settings = get_settings()
    configure_logging(settings.log_level)
    return create_app(settings)
