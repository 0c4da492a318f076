"""Routes POST and GET /status_info: workers, task counters, queue lengths and host figures."""

from __future__ import annotations

from enum import Enum
from typing import Any, Optional

import anyio
from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from fasttask.api.status_models import StatusResponse
from fasttask.api.strict_json import StrictJSONRoute
from fasttask.monitoring import read_pending_counts, read_system_figures, read_worker_status


class StatusField(str, Enum):
    WORKER_STATUS = "worker_status"
    TASK_INFO = "task_info"
    PENDING_TASK_COUNT = "pending_task_count"
    SYSTEM = "system"


class StatusRequest(BaseModel):
    # A misspelled key such as "fieldz" is 422 rather than silently returning every figure.
    model_config = ConfigDict(extra="forbid")

    fields: list[StatusField] = Field(
        default_factory=lambda: list(StatusField),
        description="figures to return; all of them when omitted or empty",
    )


def parse_field_names(values: list[str]) -> list[StatusField]:
    """Split comma-separated names; an unknown name is a 422 that lists the known ones."""
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    known = {field.value: field for field in StatusField}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_ENTITY,
            f"unknown status_info fields {unknown}; known fields: {sorted(known)}",
        )
    return [known[name] for name in names]


async def _read_field(request: Request, field: StatusField) -> Any:
    state = request.app.state
    if field is StatusField.WORKER_STATUS:
        return await read_worker_status(state.redis)
    if field is StatusField.TASK_INFO:
        return await state.counters.read_task_info(state.specs)
    if field is StatusField.PENDING_TASK_COUNT:
        return await read_pending_counts(state.broker_redis, sorted(spec.queue for spec in state.specs.values()))
    return await anyio.to_thread.run_sync(read_system_figures, str(state.settings.files_dir))


async def _status_response(request: Request, fields: list[StatusField]) -> JSONResponse:
    chosen = list(dict.fromkeys(fields or list(StatusField)))
    return JSONResponse({field.value: await _read_field(request, field) for field in chosen})


def build_status_router() -> APIRouter:
    """Create the routes that API_STATUS_INFO enables."""
    router = APIRouter(tags=["status"], route_class=StrictJSONRoute)

    @router.post("/status_info", summary="service status", response_model=StatusResponse)
    async def status_info(request: Request, body: Optional[StatusRequest] = None) -> JSONResponse:
        """Return the requested figures: worker_status, task_info, pending_task_count and system."""
        return await _status_response(request, body.fields if body is not None else [])

    @router.get("/status_info", summary="service status", response_model=StatusResponse)
    async def status_info_get(
        request: Request,
        fields: list[str] = Query(default_factory=list, description="field names, repeated or separated by commas"),
    ) -> JSONResponse:
        """Return the requested figures, chosen with `fields` query parameters."""
        return await _status_response(request, parse_field_names(fields))

    return router
