"""Map broker and backend outages to 503 naming the broker, and describe error responses for OpenAPI."""

from __future__ import annotations

import json
import logging
from typing import Any, Union

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from fasttask.settings import Settings

logger = logging.getLogger("fasttask.api")

BROKER_ERRORS = (RedisError, OperationalError, ConnectionError, TimeoutError)


class ErrorDetail(BaseModel):
    """An error: what failed and what to do next."""

    detail: str


# Responses every protected route may return besides its own.
COMMON_ERROR_RESPONSES: dict[Union[int, str], dict] = {
    401: {"model": ErrorDetail, "description": "missing or invalid credentials"},
    413: {"model": ErrorDetail, "description": "the request body is larger than the configured limit"},
    429: {"model": ErrorDetail, "description": "too many failed logins from this client; see Retry-After"},
    503: {"model": ErrorDetail, "description": "the broker or result backend is unreachable; see Retry-After"},
}

# Responses every task route may return besides its own 200, 202 and 422.
TASK_ERROR_RESPONSES: dict[Union[int, str], dict] = {
    **COMMON_ERROR_RESPONSES,
    404: {"model": ErrorDetail, "description": "unknown task id, or an id issued for another task"},
}


class ErrorDetailOrList(BaseModel):
    """An error whose detail is a message, or pydantic's list of validation errors."""

    detail: Union[str, list[dict[str, Any]]]


# Responses of the file routes besides their own 200 and 413.
FILE_ERROR_RESPONSES: dict[Union[int, str], dict] = {
    **COMMON_ERROR_RESPONSES,
    400: {"model": ErrorDetail, "description": "invalid file name or malformed multipart body"},
    403: {"model": ErrorDetail, "description": "the file is internal and never served"},
    404: {"model": ErrorDetail, "description": "no such file in the files folder"},
    415: {"model": ErrorDetail, "description": "the body is not multipart/form-data"},
    422: {"model": ErrorDetailOrList, "description": "invalid parameters, or the multipart field 'file' is missing"},
}

# Responses of /revoke and /status_info besides their own 200.
CONTROL_ERROR_RESPONSES: dict[Union[int, str], dict] = {
    **COMMON_ERROR_RESPONSES,
    404: {"model": ErrorDetail, "description": "unknown task id"},
    422: {"model": ErrorDetailOrList, "description": "invalid body, or unknown status_info fields"},
}


class ASCIIJSONResponse(JSONResponse):
    """JSON with non-ASCII characters escaped, so a lone surrogate echoed from the input stays encodable."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    # FastAPI's own handler encodes the echoed input as UTF-8, which fails with 500 on "\ud800".
    return ASCIIJSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=422)


def install_error_handlers(app: FastAPI, settings: Settings) -> None:
    broker = settings.broker_display
    app.add_exception_handler(RequestValidationError, invalid_request)

    async def broker_unavailable(request: Request, exc: Exception) -> JSONResponse:
        logger.error("%s %s failed: broker %s unreachable: %s", request.method, request.url.path, broker, type(exc).__name__)
        return JSONResponse(
            {"detail": f"the task broker at {broker} is unreachable ({type(exc).__name__}); retry later"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    for error_type in BROKER_ERRORS:
        app.add_exception_handler(error_type, broker_unavailable)
