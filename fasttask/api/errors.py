"""Map broker and backend outages to 503 with a message that names the broker."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from fasttask.settings import Settings

logger = logging.getLogger("fasttask.api")

BROKER_ERRORS = (RedisError, OperationalError, ConnectionError, TimeoutError)


def install_error_handlers(app: FastAPI, settings: Settings) -> None:
    broker = settings.broker_display

    async def broker_unavailable(request: Request, exc: Exception) -> JSONResponse:
        logger.error("%s %s failed: broker %s unreachable: %s", request.method, request.url.path, broker, type(exc).__name__)
        return JSONResponse(
            {"detail": f"the task broker at {broker} is unreachable ({type(exc).__name__}); retry later"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    for error_type in BROKER_ERRORS:
        app.add_exception_handler(error_type, broker_unavailable)
