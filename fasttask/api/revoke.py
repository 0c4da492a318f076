"""Route POST /revoke: stop a queued or running task, even when no worker is online."""

from __future__ import annotations

import logging
import time
from typing import Literal

import anyio
from celery import Celery
from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, Field

from fasttask.api.errors import BROKER_ERRORS
from fasttask.api.strict_json import StrictJSONRoute
from fasttask.counters import TaskCounters
from fasttask.results import ResultStore, TaskState
from fasttask.revocation import RevocationStore, RevokeOutcome

logger = logging.getLogger("fasttask.api.revoke")

# The revoke broadcast is a short blocking kombu call; this many may run in threads at once.
MAX_BROADCAST_THREADS = 8
broadcast_limiter = anyio.CapacityLimiter(MAX_BROADCAST_THREADS)


class RevokeRequest(BaseModel):
    result_id: str = Field(min_length=1, max_length=255, description="task id returned by /create or /run")


class RevokeResponse(BaseModel):
    """Outcome of a revoke request."""

    status: Literal["SUCCESS", "FAILURE"] = Field(description="SUCCESS when the task is now REVOKED")
    result: TaskState = Field(description="the task's state after this request")
    message: str


def _broadcast_terminate(celery_app: Celery, task_id: str) -> None:
    # Workers that hold the task stop it: a queued copy is dropped, a running one gets SIGTERM.
    started = time.monotonic()
    try:
        celery_app.control.revoke(task_id, terminate=True, signal="SIGTERM")
    except BROKER_ERRORS as exc:
        logger.error("revoke broadcast for task %s failed after %.3f s: %s", task_id, time.monotonic() - started, exc)
        raise
    logger.debug("revoke broadcast for task %s took %.3f s", task_id, time.monotonic() - started)


async def _revoke_issued_task(request: Request, task_id: str, task_name: str) -> RevokeResponse:
    revocations: RevocationStore = request.app.state.revocations
    outcome = await revocations.revoke(task_id)
    if outcome in (RevokeOutcome.ALREADY_SUCCEEDED, RevokeOutcome.ALREADY_FAILED):
        logger.info("revoke of task %s %s ignored: it already finished with %s", task_name, task_id, outcome.value)
        return RevokeResponse(
            status="FAILURE", result=TaskState(outcome.value),
            message=f"task {task_id} already finished with state {outcome.value}; it was left as it is",
        )

    counters: TaskCounters = request.app.state.counters
    await counters.record_state(task_id, task_name, TaskState.REVOKED.value)
    await anyio.to_thread.run_sync(_broadcast_terminate, request.app.state.celery_app, task_id, limiter=broadcast_limiter)
    logger.info("task %s %s revoked", task_name, task_id)

    message = "task revoked: it will not run, and it was stopped if a worker was running it"
    if outcome is RevokeOutcome.ALREADY_REVOKED:
        message = "task was already revoked"
    return RevokeResponse(status="SUCCESS", result=TaskState.REVOKED, message=message)


def build_revoke_router() -> APIRouter:
    """Create the route that API_REVOKE enables."""
    router = APIRouter(tags=["revoke"], route_class=StrictJSONRoute)

    @router.post("/revoke", response_model=RevokeResponse, summary="revoke a task")
    async def revoke(request: Request, body: RevokeRequest) -> RevokeResponse:
        """Revoke a task: a queued task never runs and a running one is terminated; a finished one is left as it is."""
        store: ResultStore = request.app.state.result_store
        task_name = await store.issued_task_name(body.result_id)
        if task_name is None:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND,
                f"unknown task id {body.result_id!r}: this service never issued it or its result expired",
            )
        return await _revoke_issued_task(request, body.result_id, task_name)

    return router
