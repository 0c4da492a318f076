"""Routes /create/{task}, /check/{task} and /run/{task}, typed per task module."""

# No `from __future__ import annotations` here: FastAPI reads the per-task models from the
# annotations of the route functions created inside the factories below.

from typing import Any, Literal, Optional, Union

from fastapi import APIRouter, Body, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, create_model

from fasttask.api.strict_json import StrictJSONRoute
from fasttask.concurrency import ConcurrencyParams
from fasttask.json_safety import json_problem
from fasttask.constants import CONCURRENCY_PARAMS_FIELD
from fasttask.publisher import new_task_id
from fasttask.registry import TaskSpec
from fasttask.results import ResultStore, TaskState, TaskStatus
from fasttask.settings import Settings


class TaskAccepted(BaseModel):
    """Current state of a task that has not finished within the wait."""

    id: str
    state: TaskState
    result: str = ""
    result_type: Literal["text"] = "text"


def task_response_model(spec: TaskSpec) -> type[BaseModel]:
    return create_model(
        f"{spec.name}_response",
        __doc__=f"State of a {spec.name} task; `result` is the task's Result on SUCCESS, an error or status text otherwise.",
        id=(str, Field(description="task id, pass it as result_id to /check")),
        state=(TaskState, ...),
        result=(Union[spec.result_model, str], ...),
        result_type=(Literal["json", "text"], Field(description='"json" when result is the Result object, "text" otherwise')),
    )


def task_request_model(spec: TaskSpec) -> type[BaseModel]:
    """Extend the task's Params with the optional concurrency limit that every task accepts."""
    return create_model(
        f"{spec.name}_request",
        __base__=spec.params_model,
        __doc__=spec.params_model.__doc__,
        **{
            CONCURRENCY_PARAMS_FIELD: (
                Optional[ConcurrencyParams],
                Field(None, description="run at most max_concurrency tasks with this key at once; the others wait"),
            ),
        },
    )


def _task_params(body: BaseModel) -> tuple[dict[str, Any], Optional[ConcurrencyParams]]:
    """Split a request body into the task's parameters and its concurrency limit.

    Raise RequestValidationError (422) for parameters that JSON cannot carry.
    """
    params = body.model_dump(mode="json", exclude={CONCURRENCY_PARAMS_FIELD})
    problem = json_problem(params)
    if problem is not None:
        raise RequestValidationError([{"type": "value_error", "loc": ("body",), "msg": f"invalid parameters: the value {problem}", "input": None}])
    return params, getattr(body, CONCURRENCY_PARAMS_FIELD)


def _store(request: Request) -> ResultStore:
    return request.app.state.result_store


def _require_issued_for(spec: TaskSpec, task_id: str, task_name: Optional[str]) -> None:
    if task_name is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown task id {task_id!r}: this service never issued it or its result expired")
    if task_name != spec.name:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"task id {task_id!r} belongs to task {task_name!r}, not {spec.name!r}")


def _status_response(task_status: TaskStatus) -> JSONResponse:
    return JSONResponse(task_status.as_response())


def _add_create_route(
    router: APIRouter, spec: TaskSpec, request_model: type[BaseModel], response_model: type[BaseModel],
) -> None:
    async def create(request: Request, params: request_model = Body()) -> JSONResponse:
        task_params, limit = _task_params(params)
        task_id = await request.app.state.publisher.publish(spec, task_params, limit)
        return _status_response(TaskStatus(task_id, TaskState.PENDING.value, "", "text"))

    create.__doc__ = f"Queue a {spec.name} task and return its id at once."
    router.add_api_route(
        f"/create/{spec.name}", create, methods=["POST"], response_model=response_model,
        summary=f"create {spec.name}", operation_id=f"create_{spec.name}", tags=["create"],
    )


def _add_check_route(router: APIRouter, spec: TaskSpec, response_model: type[BaseModel], settings: Settings) -> None:
    async def check(
        request: Request,
        result_id: str = Query(min_length=1, max_length=255, description="task id returned by /create or /run"),
        wait: float = Query(0, ge=0, le=settings.max_wait, description="seconds to wait for the task to finish"),
    ) -> JSONResponse:
        store = _store(request)
        task_name, task_status = await store.lookup(result_id)
        _require_issued_for(spec, result_id, task_name)
        if wait > 0 and not task_status.is_final:
            return _status_response(await store.wait_for_final(result_id, wait))
        return _status_response(task_status)

    check.__doc__ = f"Return the state of a {spec.name} task, waiting up to `wait` seconds for it to finish."
    router.add_api_route(
        f"/check/{spec.name}", check, methods=["GET"], response_model=response_model,
        summary=f"check {spec.name}", operation_id=f"check_{spec.name}", tags=["check"],
    )


def _add_run_route(
    router: APIRouter, spec: TaskSpec, request_model: type[BaseModel], response_model: type[BaseModel],
    settings: Settings,
) -> None:
    async def run(
        request: Request,
        params: request_model = Body(),
        timeout: Optional[float] = Query(
            None, gt=0, le=settings.max_wait,
            description=f"seconds to wait for the result before returning 202 (default {settings.run_timeout:g})",
        ),
    ) -> JSONResponse:
        task_params, limit = _task_params(params)
        task_id = new_task_id()

        async def queue_task() -> None:
            await request.app.state.publisher.publish(spec, task_params, limit, task_id)

        task_status = await _store(request).queue_and_wait(task_id, queue_task, timeout or settings.run_timeout)
        if not task_status.is_final:
            return JSONResponse(task_status.as_response(), status_code=status.HTTP_202_ACCEPTED)
        return _status_response(task_status)

    run.__doc__ = (
        f"Run a {spec.name} task on a worker and wait for its result; "
        "answer 202 with the task id if it is not finished within the timeout."
    )
    router.add_api_route(
        f"/run/{spec.name}", run, methods=["POST"], response_model=response_model,
        responses={202: {"model": TaskAccepted, "description": "not finished yet, continue with /check"}},
        summary=f"run {spec.name}", operation_id=f"run_{spec.name}", tags=["run"],
    )


def build_task_router(specs: dict[str, TaskSpec], settings: Settings) -> APIRouter:
    """Create the enabled task routes for every task module."""
    router = APIRouter(route_class=StrictJSONRoute)
    for spec in specs.values():
        request_model = task_request_model(spec)
        response_model = task_response_model(spec)
        if settings.api_create:
            _add_create_route(router, spec, request_model, response_model)
        if settings.api_check:
            _add_check_route(router, spec, response_model, settings)
        if settings.api_run:
            _add_run_route(router, spec, request_model, response_model, settings)
    return router
