"""Celery app factory: queues, limits and the wrapper that runs a task module's function."""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any

import redis
import redis.exceptions
from billiard.einfo import ExceptionInfo, ExceptionWithTraceback
from celery import Celery, Task
from celery.exceptions import Ignore, SoftTimeLimitExceeded, WorkerLostError
from celery.worker.request import Request
from celery.worker.state import task_ready
from kombu.exceptions import OperationalError
from kombu import Queue
from pydantic import BaseModel, ValidationError

from fasttask.broker import TRANSPORT_PATH
from fasttask.concurrency import ConcurrencyLimiter, ConcurrencyParams, pop_concurrency_params
from fasttask.monitoring import build_heartbeat_step
from fasttask.json_safety import json_problem
from fasttask.registry import TaskSpec
from fasttask.result_backend import guarded_backend_url
from fasttask.settings import Settings

logger = logging.getLogger("fasttask.worker")


class TaskResultError(Exception):
    """The task function returned something that does not match its Result model."""


class TaskTimeLimitError(Exception):
    """The task ran past SOFT_TIME_LIMIT and was stopped."""


# Errors of the broker or result backend connection, as opposed to errors of a task's own code.
CONNECTION_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OperationalError,
                     ConnectionError, TimeoutError)


class FastTaskRequest(Request):
    """Celery's task request, changed for two failures that are not the task's own.

    A task whose pool process died fails with the worker's node name in the message. A task
    that ran but whose result could not be stored because Redis was unreachable is re-queued,
    not stored as FAILURE, so it runs again once Redis is back.
    """

    def on_failure(self, exc_info: ExceptionInfo, send_failed_event: bool = True, return_ok: bool = False) -> None:
        error = exc_info.exception
        if isinstance(error, ExceptionWithTraceback):
            error = error.exc

        # The pool process stores failures of the task body itself, so a connection error that
        # reaches the worker's main process came from storing the result, not from the task.
        if isinstance(error, CONNECTION_ERRORS):
            self._requeue_after_connection_error(error)
            return

        if isinstance(error, WorkerLostError):
            # Celery stores this same exception object as the task's FAILURE result.
            error.args = (f"worker {self.hostname} lost the process running this task: {error}",)
            outcome = "re-queuing it" if self.task.reject_on_worker_lost else "storing FAILURE"
            logger.error("task %s %s: %s; %s", self.task_name, self.id, error, outcome)
        super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)

    def _requeue_after_connection_error(self, error: BaseException) -> None:
        task_ready(self)
        logger.warning(
            "task %s %s: its result could not be stored (%s: %s); re-queuing it, or if the broker is "
            "unreachable too, it is delivered again after VISIBILITY_TIMEOUT",
            self.task_name, self.id, type(error).__name__, error,
        )
        # reject() logs and swallows connection errors; the message then stays unacknowledged in Redis.
        self.reject(requeue=True)


def broker_transport_options(settings: Settings) -> dict[str, Any]:
    return {
        "visibility_timeout": settings.visibility_timeout,
        "socket_connect_timeout": 3,
        "socket_timeout": 10,
        "retry_on_timeout": False,
    }


def configure_app(app: Celery, settings: Settings, specs: dict[str, TaskSpec]) -> None:
    app.conf.update(
        broker_url=settings.broker,
        broker_transport=TRANSPORT_PATH if settings.broker_is_redis else None,
        result_backend=guarded_backend_url(settings.result_backend),
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_queues=[Queue(spec.queue, routing_key=spec.queue) for spec in specs.values()],
        task_routes={name: {"queue": spec.queue, "routing_key": spec.queue} for name, spec in specs.items()},
        task_create_missing_queues=True,
        # A task is acknowledged only after it finished. When its process dies it is re-queued, or
        # with REQUEUE_ON_WORKER_LOST=false stored as FAILURE by FastTaskRequest.
        task_acks_late=True,
        task_reject_on_worker_lost=settings.requeue_on_worker_lost,
        task_acks_on_failure_or_timeout=True,
        # The task wrapper stores STARTED itself, in the script run that checks the revoke marker.
        task_track_started=False,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.soft_time_limit,
        task_time_limit=settings.time_limit,
        result_expires=settings.result_expires,
        result_extended=False,
        broker_transport_options=broker_transport_options(settings),
        result_backend_transport_options={"retry_policy": {"timeout": 5.0}},
        redis_socket_connect_timeout=3,
        redis_socket_timeout=10,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=3,
        # Publishing from the API must fail fast so the caller gets 503, not a hang.
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1},
        worker_hijack_root_logger=False,
        # Celery's redirection logs every write() of a print call as its own WARNING record,
        # splitting one printed line into several; run_worker makes stdout line-buffered instead.
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
        enable_utc=True,
    )


def _result_payload(spec: TaskSpec, returned: Any) -> dict[str, Any]:
    if isinstance(returned, BaseModel):
        returned = returned.model_dump()
    try:
        result = spec.result_model.model_validate(returned)
    except ValidationError as exc:
        raise TaskResultError(f"task {spec.name!r} returned a value that does not match its Result model: {exc}") from None

    payload = result.model_dump(mode="json")
    problem = json_problem(payload)
    if problem is not None:
        # The API could not send such a result to any client.
        raise TaskResultError(f"task {spec.name!r} returned a result that {problem}: {payload!r}")
    return payload


def execute_task(spec: TaskSpec, settings: Settings, params: dict[str, Any]) -> dict[str, Any]:
    """Validate the parameters, call the task function and validate what it returned."""
    arguments = spec.params_model.model_validate(params).model_dump()
    try:
        returned = spec.function(**arguments)
    except SoftTimeLimitExceeded:
        raise TaskTimeLimitError(
            f"task {spec.name!r} exceeded SOFT_TIME_LIMIT of {settings.soft_time_limit} s and was stopped"
        ) from None
    return _result_payload(spec, returned)


def _execute_within_limit(
    task: Task, spec: TaskSpec, settings: Settings, params: dict[str, Any],
    limit: ConcurrencyParams, limiter: ConcurrencyLimiter,
) -> dict[str, Any]:
    task_id = task.request.id
    try:
        acquired = limiter.acquire(spec.name, limit, task_id)
    except redis.RedisError as exc:
        logger.warning(
            "task %s %s waits %g s: taking a concurrency slot failed: %s", spec.name, task_id, limit.countdown, exc,
        )
        raise task.retry(countdown=limit.countdown) from None

    if not acquired:
        logger.info(
            "task %s %s waits %g s: %d tasks with concurrency key %r are running",
            spec.name, task_id, limit.countdown, limit.max_concurrency, limit.concurrency_key,
        )
        # Waiting for a slot is not a failure: the task is registered with max_retries=None,
        # so it may wait any number of times.
        raise task.retry(countdown=limit.countdown)

    try:
        return execute_task(spec, settings, params)
    finally:
        limiter.release(spec.name, limit, task_id)


def register_task(app: Celery, spec: TaskSpec, settings: Settings, limiter: ConcurrencyLimiter) -> None:
    def run(task: Task, **params: Any) -> dict[str, Any]:
        task_id = task.request.id
        if not task.backend.start_task(task_id, spec.name, task.request):
            # /revoke already stored REVOKED; Ignore ends the task without storing another state.
            logger.info("task %s %s skipped: it was revoked before it started", spec.name, task_id)
            raise Ignore()

        started = time.monotonic()
        limit = pop_concurrency_params(params)
        if limit is None:
            result = execute_task(spec, settings, params)
        else:
            result = _execute_within_limit(task, spec, settings, params, limit, limiter)
        logger.info("task %s %s finished in %.3f s", spec.name, task_id, time.monotonic() - started)
        return result

    run.__name__ = spec.name
    run.__qualname__ = spec.name
    app.task(name=spec.name, queue=spec.queue, bind=True, max_retries=None, Request=FastTaskRequest)(run)


def create_celery_app(settings: Settings, specs: dict[str, TaskSpec], register: bool = True) -> Celery:
    """Build the Celery app; the API builds it with register=False because it never executes tasks."""
    app = Celery("fasttask", set_as_current=False)
    configure_app(app, settings, specs)
    if register:
        # One result backend, and so one Redis connection pool, for all threads of a worker
        # process. Celery builds one per thread otherwise, about 1.4 ms each, which a thread
        # pool worker paid for each of its first tasks. Celery raises on result.get() inside a
        # task and subscribes to no results there, so the backend's pub/sub consumer, which is
        # not thread-safe, stays unused.
        app.conf.result_backend_thread_safe = True
        limiter = ConcurrencyLimiter(settings.result_backend)
        for spec in specs.values():
            register_task(app, spec, settings, limiter)
        app.steps["worker"].add(build_heartbeat_step(settings.result_backend, settings.worker_pool.value))
    return app


def default_node_name() -> str:
    return f"fasttask-{os.getpid()}@{socket.gethostname()}"
